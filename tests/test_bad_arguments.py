"""Arguments and settings out of any sane range get exit 2 and a clear message, not an
overflow: an endless checkpoint age, a file name longer than the system allows, a
sampling interval of centuries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_definition

TASKS = {"a": {"action": "condition_check", "parameters": {"expression": "1"}}}


def instance(cli, workspace: Path) -> str:
    result = cli("run", str(write_definition(workspace, TASKS)), "--json")
    assert result.exit_code == 0, result
    found: str = result.json()["id"]
    return found


@pytest.mark.parametrize("days", ["inf", "1e309", "nan", "1e300", "100001"])
def test_checkpoint_cleanup_refuses_endless_ages(cli, workspace: Path, days: str) -> None:
    made = instance(cli, workspace)
    assert cli("checkpoint", made).exit_code == 0
    result = cli("checkpoints", "cleanup", made, "--max-age-days", days)
    assert result.exit_code == 2, result
    assert "--max-age-days" in result.stderr  # Click's own range check catches nan first
    assert "internal error" not in result.stderr
    listed = cli("checkpoints", "list", made, "--json").json()
    assert len(listed) >= 1  # nothing deleted
    kept = cli("checkpoints", "cleanup", made, "--max-age-days", "100000")
    assert kept.exit_code == 0, kept


def test_report_to_a_file_name_too_long(cli, workspace: Path) -> None:
    made = instance(cli, workspace)
    result = cli("report", made, "--html", "x" * 300 + ".html")
    assert result.exit_code == 2, result
    assert "cannot write the report to" in result.stderr
    assert "File name too long" in result.stderr


@pytest.mark.parametrize("interval", [1e300, 3601, 0.01])
def test_a_sampling_interval_out_of_range_is_refused(cli, workspace, interval) -> None:
    path = write_definition(workspace, TASKS, monitoring={"sample_interval": interval})
    result = cli("validate", str(path))
    assert result.exit_code == 2
    assert "/monitoring/sample_interval" in result.stderr


@pytest.mark.parametrize("value", ["1.0e+300", ".inf", ".nan", "3601", "0.01", "'x'"])
def test_a_workspace_sampling_interval_out_of_range_is_refused(
    cli_process, workspace: Path, value: str
) -> None:
    (workspace / "workflow_cli.yaml").write_text(f"monitoring:\n  sample_interval: {value}\n")
    path = write_definition(workspace, TASKS)
    result = cli_process("run", str(path))
    assert result.returncode == 2, result.stderr
    # The settings file is read like a definition: a value that is no number at all
    # (.inf, .nan) is refused at its pointer, any other out-of-range one by its range.
    ranged = "monitoring.sample_interval must be a number of seconds from 0.1 to 3600"
    unloadable = "/monitoring/sample_interval: " in result.stderr and (
        "not a finite number" in result.stderr
    )
    assert ranged in result.stderr or unloadable
    assert "Traceback" not in result.stderr


def test_a_workspace_setting_written_twice_is_refused(cli, workspace: Path) -> None:
    (workspace / "workflow_cli.yaml").write_text(
        "monitoring:\n  sample_interval: 5\nmonitoring:\n  sample_interval: 60\n"
    )
    result = cli("run", str(write_definition(workspace, TASKS)))
    assert result.exit_code != 0
    assert "/monitoring: duplicate key 'monitoring'" in result.stderr
    assert not any((workspace / "instances").glob("*"))


def test_an_hour_long_sampling_interval_runs(cli_process, workspace: Path) -> None:
    (workspace / "workflow_cli.yaml").write_text("monitoring:\n  sample_interval: 3600\n")
    path = write_definition(workspace, TASKS, monitoring={"sample_interval": 3600})
    result = cli_process("run", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["state"] == "completed"


@pytest.mark.parametrize("age", ["99999999999d", "10000000000000000000000h", "2000000000000w"])
def test_alerts_since_an_age_before_any_date(cli, age: str) -> None:
    result = cli("alerts", "--since", age)
    assert result.exit_code == 2, result
    assert f"--since '{age}' is an age longer than dates go back" in result.stderr


@pytest.mark.parametrize("command", [["prune"], ["cache", "clear"]])
def test_a_bad_older_than_is_named_as_itself(cli, command: list[str]) -> None:
    result = cli(*command, "--older-than", "soon")
    assert result.exit_code == 2, result
    assert "--older-than 'soon' is neither an age" in result.stderr


@pytest.mark.parametrize("option", ["--interval", "--duration"])
def test_monitor_refuses_nan_seconds(cli_process, workspace: Path, option: str) -> None:
    created = cli_process("create", str(write_definition(workspace, TASKS)))
    assert created.returncode == 0, created.stderr
    other = "--duration" if option == "--interval" else "--interval"
    # A created instance is waited for: NaN seconds slept (or watched for) were an
    # internal error, or a watch that never ended.
    result = cli_process("monitor", created.stdout.strip(), option, "nan", other, "0.2", timeout=30)
    assert result.returncode == 2, result.stderr
    assert f"{option} must be a number of seconds, not nan" in result.stderr


def test_events_follow_refuses_nan_seconds(cli, workspace: Path) -> None:
    created = cli("create", str(write_definition(workspace, TASKS)))
    result = cli("events", created.stdout.strip(), "--follow", "--interval", "nan")
    assert result.exit_code == 2, result
    assert "--interval must be a number of seconds, not nan" in result.stderr


@pytest.mark.parametrize("seconds", ["nan", "inf"])
def test_health_refuses_a_stuck_after_it_could_not_write(cli, workspace, seconds) -> None:
    instance(cli, workspace)
    result = cli("health", "--stuck-after", seconds)
    assert result.exit_code == 2, result
    assert f"--stuck-after must be a number of seconds, not {seconds}" in result.stderr
    summary = workspace / "monitoring" / "health.json"
    assert not summary.exists() or b"NaN" not in summary.read_bytes()
