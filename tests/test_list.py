"""``list``: whole ids, newest first, --limit/--all, filters, sort, tab-separated rows
when piped, and the fast reader behind it."""

from __future__ import annotations

import json
from datetime import datetime

from conftest import write_definition

from workflow_cli.formats import format_age, format_duration
from workflow_cli.store.instances import STATE_FILE

LONG = "a_template_whose_name_is_long_enough_to_be_cut_by_any_table_at_80_columns"


def _quick(workspace, name="wf.json"):
    return write_definition(
        workspace, {"a": {"action": "condition_check", "parameters": {"expression": "1"}}}, name
    )


def _failing(workspace):
    return write_definition(
        workspace,
        {"a": {"action": "condition_check", "parameters": {"expression": "1 / 0"}}},
        "bad.json",
    )


def test_piped_list_prints_whole_ids_tab_separated(cli, workspace):
    (workspace / "templates").mkdir()
    template = {**json.loads(_quick(workspace).read_text()), "id": LONG}
    (workspace / "templates" / f"{LONG}.json").write_text(json.dumps(template))
    instance = cli("create", LONG, "--json").json()["id"]
    assert len(instance) > 80
    result = cli("list")  # CliRunner's stdout is not a terminal
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == [
        "ID", "TEMPLATE", "STATE", "COMPLETED", "HEALTH", "CREATED", "FINISHED", "DURATION"
    ]  # fmt: skip
    row = lines[1].split("\t")
    assert row[0] == instance and row[1] == LONG and row[2] == "created" and row[3] == "0/1"


def test_list_of_200_newest_first_with_limit_and_filters(cli, workspace):
    quick, bad = _quick(workspace), _failing(workspace)
    for _ in range(195):
        assert cli("create", str(quick)).exit_code == 0
    failed = [cli("run", str(bad), "--json").json()["id"] for _ in range(3)]
    done = [cli("run", str(quick), "--json").json()["id"] for _ in range(2)]

    shown = cli("list", "--json").json()
    assert len(shown) == 20  # the default limit
    created = [row["created_at"] for row in shown]
    assert created == sorted(created, reverse=True)
    assert {row["id"] for row in shown[:2]} == set(done)  # the newest first
    assert "20 of 200 shown" in cli("list").stderr
    assert len(cli("list", "--all", "--json").json()) == 200
    assert len(cli("list", "--limit", "7", "--json").json()) == 7
    oldest = cli("list", "--asc", "--limit", "1", "--json").json()[0]
    everything = cli("list", "--all", "--json").json()
    assert oldest["created_at"] == min(r["created_at"] for r in everything)

    only_failed = cli("list", "--state", "failed", "--json").json()
    assert sorted(r["id"] for r in only_failed) == sorted(failed)
    assert all(r["progress"] == {"completed": 0, "total": 1} for r in only_failed)
    mixed = cli("list", "--state", "failed", "--state", "completed", "--json").json()
    assert sorted(r["id"] for r in mixed) == sorted(failed + done)
    assert len(cli("list", "--state", "failed,completed", "--json").json()) == 5
    assert cli("list", "--template", "nothing", "--json").json() == []
    assert len(cli("list", "--template", "wf", "--all", "--json").json()) == 200
    assert cli("list", "--since", "2999-01-01T00:00:00", "--json").json() == []
    assert len(cli("list", "--since", "1d", "--all", "--json").json()) == 200
    by_duration = cli("list", "--state", "completed", "--sort", "duration", "--json").json()
    assert [r["duration"] is not None for r in by_duration] == [True, True]

    assert cli("list", "--state", "bogus").exit_code == 2
    assert cli("list", "--sort", "bogus").exit_code == 2
    assert cli("list", "--since", "yesterday").exit_code == 2


def test_list_reads_a_stale_or_missing_state_cache_from_the_journal(cli, workspace):
    instance = cli("run", str(_quick(workspace)), "--json").json()["id"]
    (workspace / "instances" / instance / STATE_FILE).unlink()
    [row] = cli("list", "--json").json()
    assert row["state"] == "completed" and row["progress"] == {"completed": 1, "total": 1}


def test_kept_summaries_follow_the_journal_and_survive_damage(cli, workspace):
    quick = _quick(workspace)
    instance = cli("create", str(quick)).stdout.strip()
    index = workspace / "instances" / ".summaries.json"
    [row] = cli("list", "--json").json()
    assert row["state"] == "created" and index.is_file()
    assert index.stat().st_mode & 0o777 == 0o600
    assert cli("start", instance).exit_code == 0  # the journal grows: read again
    [row] = cli("list", "--json").json()
    assert row["state"] == "completed" and row["progress"] == {"completed": 1, "total": 1}

    # A kept summary stands only for the journal it was read from.
    kept = json.loads(index.read_bytes())
    key, fields = kept["instances"][instance]
    forged = [*fields[:2], "failed", *fields[3:]]
    index.write_text(json.dumps({"instances": {instance: [[0, *key[1:]], forged]}}))
    assert cli("list", "--json").json()[0]["state"] == "completed"
    for damage in ("{not json", '{"instances": {"x": 1}}', json.dumps([1, 2])):
        index.write_text(damage)
        assert cli("list", "--json").json()[0]["state"] == "completed"
    index.write_text(
        json.dumps({"instances": {instance: [key, [*fields[:5], "many", *fields[6:]]]}})
    )
    assert cli("list", "--json").json()[0]["progress"]["total"] == 1
    assert json.loads(index.read_bytes())["instances"][instance] == [key, fields]


def test_list_names_an_unreadable_instance_and_lists_the_rest(cli, workspace):
    good = cli("create", str(_quick(workspace))).stdout.strip()
    broken = cli("create", str(_quick(workspace))).stdout.strip()
    (workspace / "instances" / broken / STATE_FILE).unlink()
    (workspace / "instances" / broken / "events.jsonl").write_text("not json\n")
    listed = cli("list", "--json")
    assert listed.exit_code == 5  # a damaged journal, named
    assert "events.jsonl" in listed.stderr and broken in listed.stderr
    rows = {r["id"]: r for r in listed.json()}
    assert rows[good]["state"] == "created"
    assert rows[broken]["state"] == "unreadable" and rows[broken]["error"]


def test_one_format_for_ages_and_durations():
    now = datetime.fromisoformat("2026-12-03T10:00:00+00:00")
    assert format_age("2026-12-03T09:57:00+00:00", now) == "3 min ago"
    assert format_age("2026-12-03T07:00:00+00:00", now) == "3 h ago"
    assert format_age("2026-11-01T07:00:00+00:00", now, utc=True) == "2026-11-01 07:00:00 UTC"
    assert [format_duration(s) for s in (0.25, 4.21, 200, 7500)] == [
        "250 ms", "4.2 s", "3 min 20 s", "2 h 05 min"
    ]  # fmt: skip


def test_templates_checkpoints_and_alerts_are_tab_separated_when_piped(cli, workspace):
    templates = cli("templates").stdout.splitlines()
    assert templates[0] == "TEMPLATE\tDESCRIPTION\tPARAMETERS"
    assert any(line.startswith("sequential_pipeline\t") for line in templates[1:])
    instance = cli("run", str(_quick(workspace)), "--json").json()["id"]
    listed = cli("checkpoints", instance, "--json").json()
    lines = cli("checkpoints", instance).stdout.splitlines()
    assert lines[0] == "CHECKPOINT\tTIME\tEVENT\tLABEL"
    assert [line.split("\t")[0] for line in lines[1:]] == [c["id"] for c in listed]
    (workspace / "monitoring").mkdir(exist_ok=True)
    alert = {"time": "2026-12-03T09:00:00+00:00", "level": "warning", "instance": "x" * 90}
    (workspace / "monitoring" / "alerts.jsonl").write_text(
        json.dumps({**alert, "task": None, "message": "slow\tand\nlate"}) + "\n"
    )
    rows = cli("--utc", "alerts").stdout.splitlines()
    assert rows == [
        "TIME\tLEVEL\tINSTANCE\tTASK\tWHAT",
        f"2026-12-03 09:00:00 UTC\twarning\t{'x' * 90}\t\tslow and late",
    ]
