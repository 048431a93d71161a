"""Schema versions and migration: the pure steps, golden files per version, and
``workflow_cli migrate`` for files, templates and instances, through the real CLI."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflow_cli.definition.migrations import (
    CURRENT_VERSION,
    STEPS,
    VERSIONS,
    migrate,
    normalize,
    schema_version_of,
    to_1_1_0,
    to_1_2_0,
    to_2_0_0,
)
from workflow_cli.definition.templates import builtin_dir
from workflow_cli.definition.validation import workflow_schema

GOLDEN = Path(__file__).parent / "migrations"


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)


def _golden_inputs() -> list[Path]:
    return sorted(GOLDEN.glob("*.input.*"))


# -- the steps, pure ----------------------------------------------------------------------


def test_every_version_has_a_schema_and_every_older_one_a_step():
    assert VERSIONS[-1] == CURRENT_VERSION == "2.0.0"
    assert list(STEPS) == list(VERSIONS[:-1])
    for version in VERSIONS:
        schema = workflow_schema(version)
        assert schema["properties"]["schema_version"] == {"const": version}
    assert [STEPS[v][0] for v in STEPS] == list(VERSIONS[1:])


def test_each_version_adds_what_its_history_says():
    def task_fields(version: str) -> set[str]:
        schema = workflow_schema(version)
        task = schema["$defs"]["task"]
        settings = schema["$defs"].get("task_settings", {}).get("properties", {})
        return set(task["properties"]) | set(settings)

    assert "execution_mode" not in task_fields("1.0.0")
    assert "execution_mode" in task_fields("1.1.0")
    assert "conditions" not in task_fields("1.1.0")
    assert "conditions" in task_fields("1.2.0")
    assert "retry_count" not in task_fields("1.2.0")
    assert {"retry_count", "milestone", "parallel_group"} <= task_fields("2.0.0")
    assert "checkpoint_interval" not in workflow_schema("1.2.0")["properties"]
    assert "checkpoint_interval" in workflow_schema("2.0.0")["properties"]


def test_to_1_1_0_turns_parallel_into_execution_modes_without_touching_its_input():
    given = {
        "schema_version": "1.0.0",
        "tasks": {
            "a": {"action": "x", "parallel": False},
            "b": {"action": "x", "parallel": True},
            "c": {"action": "x"},
        },
    }
    before = copy.deepcopy(given)
    result = to_1_1_0(given)
    assert given == before
    assert result["schema_version"] == "1.1.0"
    assert result["tasks"] == {
        "a": {"action": "x", "execution_mode": "sequential"},
        "b": {"action": "x", "execution_mode": "parallel"},
        "c": {"action": "x"},
    }


def test_to_1_1_0_reads_tasks_written_as_a_list():
    result = to_1_1_0({"version": "1.0.0", "tasks": [{"id": "a", "parallel": False}]})
    assert result == {
        "version": "1.0.0",
        "schema_version": "1.1.0",
        "tasks": [{"id": "a", "execution_mode": "sequential"}],
    }


def test_later_steps_change_only_the_version():
    given = {"schema_version": "1.1.0", "tasks": {"a": {"action": "x", "priority": 2}}}
    assert to_1_2_0(given) == {**given, "schema_version": "1.2.0"}
    assert to_2_0_0({**given, "schema_version": "1.2.0"}) == {**given, "schema_version": "2.0.0"}
    assert given["schema_version"] == "1.1.0"


def test_migrate_chains_the_steps_and_names_the_versions_passed():
    result, passed = migrate({"schema_version": "1.0.0", "tasks": {}})
    assert passed == ["1.1.0", "1.2.0", "2.0.0"]
    assert result["schema_version"] == "2.0.0"
    assert migrate({"schema_version": "2.0.0", "tasks": {}})[1] == []
    with pytest.raises(ValueError, match="back"):
        migrate({"schema_version": "2.0.0"}, "1.0.0")


@pytest.mark.parametrize(
    ("document", "version"),
    [
        ({"schema_version": "1.1.0", "version": "2.0.0"}, "1.1.0"),
        ({"version": "1.2.0"}, "1.2.0"),
        ({"version": "7.3.1"}, CURRENT_VERSION),  # a workflow's own version, not a schema's
        ({}, CURRENT_VERSION),
    ],
)
def test_the_schema_version_a_definition_is_read_as(document, version):
    assert schema_version_of(document) == version


def test_normalize_reads_the_documents_way_of_writing():
    written = {
        "name": "Multi-Agent Processing",
        "version": "2.0.0",
        "timeout": "30m",
        "tasks": [
            {"id": "a", "action": "x", "timeout": "1.5s"},
            {"id": "b", "action": "x", "timeout": 90},
        ],
    }
    result, problems = normalize(written)
    assert problems == []
    assert result["id"] == "multi-agent-processing"
    assert result["schema_version"] == "2.0.0"
    assert result["timeout_seconds"] == 1800
    assert result["tasks"] == {
        "a": {"action": "x", "timeout_seconds": 1.5},
        "b": {"action": "x", "timeout_seconds": 90},
    }
    assert "id" not in written and isinstance(written["tasks"], list)


def test_normalize_reports_what_it_cannot_read():
    _, problems = normalize(
        {
            "name": "x",
            "tasks": [
                {"action": "x"},
                "text",
                {"id": "a", "action": "x", "timeout": "soon"},
                {"id": "a", "action": "x", "timeout": 1, "timeout_seconds": 2},
            ],
        }
    )
    assert [str(p) for p in problems] == [
        "/tasks/0/id: a task in a list needs an 'id' (text)",
        "/tasks/1: must be a task object with an 'id'",
        "/tasks/3/id: duplicate task id 'a'",
        "/tasks/a/timeout: must be seconds above 0 or a duration such as '30m', not 'soon'",
    ]


# -- golden files, through the CLI ----------------------------------------------------------


@pytest.mark.parametrize("source", _golden_inputs(), ids=lambda p: p.name)
def test_golden_file_migrates_to_its_expected_output(cli, workspace, source):
    version = source.name.split(".input.")[0]
    expected_path = source.with_name(source.name.replace(".input.", ".expected."))
    target = workspace / f"definition{source.suffix}"
    shutil.copy(source, target)
    assert schema_version_of(_load(target)) == version

    dry = cli("migrate", str(target), "--dry-run")
    assert dry.exit_code == 0, dry
    assert target.read_bytes() == source.read_bytes()  # a dry run changes nothing

    result = cli("migrate", str(target))
    assert result.exit_code == 0, result
    if version == CURRENT_VERSION:
        assert "nothing to migrate" in result.stdout
        assert target.read_bytes() == source.read_bytes()
        return
    assert f"schema {version} -> {CURRENT_VERSION}" in result.stdout
    assert "--- " in dry.stdout and "+++ " in dry.stdout
    migrated, expected = _load(target), _load(expected_path)
    assert migrated == expected
    assert json.dumps(migrated) == json.dumps(expected)  # the same key order too
    if source.suffix == ".yaml":
        assert target.read_text() == expected_path.read_text()  # YAML stays YAML
    assert cli("validate", str(target)).exit_code == 0
    again = cli("migrate", str(target))
    assert "nothing to migrate" in again.stdout


@pytest.mark.parametrize("source", _golden_inputs(), ids=lambda p: p.name)
def test_an_older_definition_runs_as_written_with_a_notice(cli, workspace, source):
    version = source.name.split(".input.")[0]
    target = workspace / f"definition{source.suffix}"
    shutil.copy(source, target)
    checked = cli("validate", str(target))
    assert checked.exit_code == 0, checked
    result = cli("run", str(target), "--json")
    assert result.exit_code == 0, result
    notice = f"is on schema {version}; migrated in memory to {CURRENT_VERSION}"
    assert (notice in result.stderr) == (version != CURRENT_VERSION)
    assert (notice in checked.stderr) == (version != CURRENT_VERSION)
    assert result.json()["state"] == "completed"
    assert target.read_bytes() == source.read_bytes()


def test_a_field_newer_than_the_definitions_version_is_named(cli, workspace):
    target = workspace / "old.json"
    document = _load(GOLDEN / "1.0.0.input.json")
    document["tasks"]["archive"]["retry_count"] = 2
    document["tasks"]["archive"]["conditions"] = "true"
    target.write_text(json.dumps(document))
    result = cli("validate", str(target))
    assert result.exit_code == 2
    assert "/tasks/archive" in result.stderr
    assert "'conditions', 'retry_count' were unexpected" in result.stderr
    assert "(schema 1.0.0)" in result.stderr
    refused = cli("migrate", str(target))
    assert refused.exit_code == 2 and "(schema 1.0.0)" not in refused.stdout
    assert json.loads(target.read_text()) == document


def test_every_shipped_template_is_on_the_current_version(cli):
    paths = sorted(builtin_dir().glob("*.json"))
    assert len(paths) >= 4
    for path in paths:
        assert json.loads(path.read_text())["workflow"]["schema_version"] == CURRENT_VERSION
    status = cli("migrate", "status", "--json")
    assert status.exit_code == 0, status
    templates = status.json()["templates"]
    assert {t["name"] for t in templates} >= {p.stem for p in paths}
    assert {t["version"] for t in templates} == {CURRENT_VERSION}
    refused = cli("migrate", "approval_chain")
    assert refused.exit_code == 2 and "built-in template" in refused.stderr


def test_a_workspace_template_is_migrated_by_name_and_keeps_its_mode(cli, workspace):
    (workspace / "templates").mkdir()
    path = workspace / "templates" / "nightly.yaml"
    body = _load(GOLDEN / "1.0.0.input.json")
    template = {"name": "nightly", "parameters": {}, "workflow": body}
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    path.chmod(0o640)
    assert cli("migrate", "status", "--json").json()["counts"]["templates"]["1.0.0"] == 1

    result = cli("migrate", "nightly")
    assert result.exit_code == 0, result
    migrated = yaml.safe_load(path.read_text())
    assert migrated["workflow"] == _load(GOLDEN / "1.0.0.expected.json")
    assert migrated["name"] == "nightly"
    assert os.stat(path).st_mode & 0o777 == 0o640
    created = cli("create", "nightly")
    assert created.exit_code == 0 and "notice" not in created.stderr


def test_a_yaml_file_with_comments_is_not_rewritten(cli, workspace):
    target = workspace / "commented.yaml"
    text = (
        (GOLDEN / "1.2.0.input.yaml")
        .read_text()
        .replace("params:", "# the level to route by\nparams:")
    )
    target.write_text(text)
    refused = cli("migrate", str(target))
    assert refused.exit_code == 2
    assert "has comments" in refused.stderr
    assert target.read_text() == text
    shown = cli("migrate", str(target), "--dry-run")
    assert shown.exit_code == 0 and "+schema_version: 2.0.0" in shown.stdout
    # A '#' inside a value is not a comment.
    target.write_text(text.replace("# the level to route by\n", "").replace("Routed", "'No #1'"))
    assert cli("migrate", str(target)).exit_code == 0


def test_a_file_with_a_key_written_twice_is_not_rewritten(cli, workspace):
    target = workspace / "twice.json"
    text = (GOLDEN / "1.0.0.input.json").read_text().replace("{", '{"name": "first", ', 1)
    target.write_text(text)
    refused = cli("migrate", str(target))
    assert refused.exit_code == 2
    assert "/name: duplicate key 'name'" in refused.stderr
    assert target.read_text() == text


def _old_instance(cli, workspace) -> str:
    shutil.copy(GOLDEN / "1.0.0.input.json", workspace / "nightly.json")
    created = cli("create", "nightly.json")
    assert created.exit_code == 0, created
    assert "is on schema 1.0.0" in created.stderr
    return str(created.stdout).strip()


def test_an_instance_is_migrated_through_the_journal_and_undone(cli, workspace):
    instance = _old_instance(cli, workspace)
    folder = workspace / "instances" / instance
    written = json.loads((folder / "definition.json").read_text())
    assert written["schema_version"] == "1.0.0"
    counts = cli("migrate", "status", "--json").json()["counts"]["instances"]
    assert counts == {"1.0.0": 1}

    dry = cli("migrate", "--instance", instance, "--dry-run")
    assert dry.exit_code == 0 and '+      "execution_mode": "sequential"' in dry.stdout
    assert json.loads((folder / "definition.json").read_text()) == written

    result = cli("migrate", "--instance", instance, "--as", "dana")
    assert result.exit_code == 0, result
    migrated = json.loads((folder / "definition.json").read_text())
    assert migrated["schema_version"] == "2.0.0"
    assert migrated["tasks"]["extract"]["execution_mode"] == "sequential"
    assert json.loads((folder / "definition.1.0.0.json").read_text()) == written
    lines = cli("events", instance, "--json").stdout.splitlines()
    last = json.loads(lines[-1])  # one event per line
    assert last["type"] == "definition_migrated"
    assert (last["from_version"], last["to_version"], last["by"]) == ("1.0.0", "2.0.0", "dana")
    state = cli("status", instance, "--json").json()
    assert state["state"] == "created"
    assert cli("migrate", "--instance", instance).stdout.count("nothing to migrate") == 1

    undone = cli("migrate", "--instance", instance, "--undo")
    assert undone.exit_code == 0, undone
    assert json.loads((folder / "definition.json").read_text()) == written
    again = cli("migrate", "--instance", instance, "--undo")
    assert again.exit_code == 2 and "no migration to undo" in again.stderr

    run = cli("start", instance, "--json")  # on 1.0.0 as written: runs, migrated in memory
    assert run.exit_code == 0, run
    assert "is on schema 1.0.0; migrated in memory" in run.stderr
    assert run.json()["state"] == "completed"


def test_migrate_all_covers_files_and_instances(cli, workspace):
    instance = _old_instance(cli, workspace)
    shutil.copy(GOLDEN / "1.2.0.input.yaml", workspace / "routed.yaml")
    shutil.copy(GOLDEN / "2.0.0.input.json", workspace / "current.json")
    (workspace / "notes.yaml").write_text("just: notes\n")  # not a definition: left alone

    dry = cli("migrate", "--all", "--dry-run", "--json")
    assert dry.exit_code == 0, dry
    planned = {Path(m["target"]).name for m in dry.json()["migrations"]}
    assert planned == {"nightly.json", "routed.yaml", instance}
    assert not any(m["written"] for m in dry.json()["migrations"])

    done = cli("migrate", "--all")
    assert done.exit_code == 0, done
    status = cli("migrate", "status", "--json").json()
    versions = {e["version"] for group in ("definitions", "instances") for e in status[group]}
    assert versions == {CURRENT_VERSION}
    assert "nothing to migrate" in cli("migrate", "--all").stdout
    assert (workspace / "notes.yaml").read_text() == "just: notes\n"


def test_migrate_refuses_an_instance_being_run(cli, workspace):
    from workflow_cli.store.runlock import RunLock

    instance = _old_instance(cli, workspace)
    lock = RunLock(workspace / "instances" / instance)
    lock.acquire(instance)
    try:
        busy = cli("migrate", "--instance", instance)
    finally:
        lock.release()
    assert busy.exit_code == 4, busy
    folder = workspace / "instances" / instance
    assert not (folder / "definition.1.0.0.json").exists()
    assert json.loads((folder / "definition.json").read_text())["schema_version"] == "1.0.0"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["status", "--all"],
        ["--instance", "x", "--all"],
        ["wf.json", "--undo"],
        ["--instance", "x", "--undo", "--dry-run"],
    ],
)
def test_migrate_wants_one_thing_to_do(cli, args):
    result = cli("migrate", *args)
    assert result.exit_code == 2, result


def test_an_unknown_schema_version_is_named_and_the_rest_still_checked(cli, workspace):
    document = _load(GOLDEN / "2.0.0.input.json")
    document["schema_version"] = "1.5.0"
    document["tasks"]["first"]["retry_count"] = -1
    target = workspace / "future.json"
    target.write_text(json.dumps(document))
    result = cli("validate", str(target), "--json")
    assert result.exit_code == 2
    problems = {p["pointer"]: p["message"] for p in result.json()["problems"]}
    assert problems["/schema_version"].startswith("unknown schema version '1.5.0' (known:")
    assert "/tasks/first/retry_count" in problems
    refused = cli("migrate", str(target))
    assert refused.exit_code == 2 and "unknown schema version '1.5.0'" in refused.stderr


def test_a_migration_killed_after_its_event_is_finished_by_running_it_again(
    cli, cli_process, workspace, monkeypatch
):
    instance = _old_instance(cli, workspace)
    folder = workspace / "instances" / instance
    monkeypatch.setenv("WORKFLOW_CLI_KILL_AFTER_APPEND", "1")
    killed = cli_process("migrate", "--instance", instance)
    monkeypatch.delenv("WORKFLOW_CLI_KILL_AFTER_APPEND")
    assert killed.returncode == -9, killed
    assert json.loads((folder / "definition.json").read_text())["schema_version"] == "1.0.0"

    def migrations() -> list[str]:
        lines = (folder / "events.jsonl").read_text().splitlines()
        return [e["type"] for e in map(json.loads, lines) if e["type"].startswith("definition_")]

    assert migrations() == ["definition_migrated"]
    again = cli_process("migrate", "--instance", instance)
    assert again.returncode == 0, again
    assert json.loads((folder / "definition.json").read_text())["schema_version"] == "2.0.0"
    assert migrations() == ["definition_migrated"]  # journaled once
    undone = cli_process("migrate", "--instance", instance, "--undo")
    assert undone.returncode == 0, undone
    assert migrations() == ["definition_migrated", "definition_migration_undone"]
    assert json.loads((folder / "definition.json").read_text())["schema_version"] == "1.0.0"


def test_migrate_status_lists_every_template_file_templates_reads(cli, workspace: Path) -> None:
    templates = workspace / "templates"
    templates.mkdir()
    document = json.loads((builtin_dir() / "sequential_pipeline.json").read_text())
    (templates / "upper.JSON").write_text(json.dumps({**document, "name": "upper"}))
    (templates / "folder.json").mkdir()
    result = cli("migrate", "status", "--json")
    assert result.exit_code == 0, result
    versions = {entry["name"]: entry["version"] for entry in result.json()["templates"]}
    assert versions["upper"] == "2.0.0"
    assert versions["folder"] == "unreadable"
