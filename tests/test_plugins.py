"""Third-party actions come from the entry-point group workflow_cli.actions."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import pytest
from conftest import write_definition

from workflow_cli.engine import actions


class Shout:
    name = "shout"
    inline = False

    def check(self, ctx):
        return []

    def run(self, call):
        return str(call.parameters.get("text", "")).upper()


@pytest.fixture
def plugin(monkeypatch):
    module = types.ModuleType("shout_plugin")
    module.ACTION = Shout()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shout_plugin", module)
    points = [
        importlib.metadata.EntryPoint("shout", "shout_plugin:ACTION", actions.ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("broken", "no_such_module:X", actions.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda group=None: [p for p in points if p.group == group],
    )
    actions._plugins.cache_clear()
    actions.get_action.cache_clear()
    yield
    actions._plugins.cache_clear()
    actions.get_action.cache_clear()


def test_plugin_action_runs_and_a_broken_one_only_warns(plugin, cli, workspace):
    path = write_definition(workspace, {"s": {"action": "shout", "parameters": {"text": "hi"}}})
    result = cli("run", str(path), "--json")
    assert result.exit_code == 0, result
    assert cli("status", result.json()["id"], "--json").json()["tasks"]["s"]["output"] == "HI"
    assert "warning: action plugin 'broken' failed to load" in result.stderr
