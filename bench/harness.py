"""What the benchmark scripts share: figures with targets, timing a command, the summary."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _fmt(value: float, unit: str = "") -> str:
    if unit == "x":
        return f"{value:.4f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


class Results:
    """Figures as they are measured: each printed at once, PASS/MISS against its target."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        key: str,
        label: str,
        value: float,
        unit: str,
        target: float | None = None,
        samples: list[float] | None = None,
        *,
        note: str = "",
    ) -> None:
        status = "info" if target is None else ("PASS" if value <= target else "MISS")
        self.rows.append(
            {
                "key": key,
                "label": label,
                "value": value,
                "unit": unit,
                "target": target,
                "status": status,
                "samples": samples,
                "note": note,
            }
        )
        print(f"  {self._line(self.rows[-1])}", flush=True)

    @staticmethod
    def _line(row: dict[str, Any]) -> str:
        unit = row["unit"]
        shown = f"{_fmt(row['value'], unit)} {unit}"
        goal = f"<= {_fmt(row['target'], unit)} {unit}" if row["target"] is not None else ""
        note = f"  ({row['note']})" if row.get("note") else ""
        return f"{row['label']:<52} {shown:>14}  {goal:>16}  {row['status']}{note}"

    def table(self) -> str:
        lines = [f"{'figure':<52} {'value':>14}  {'target':>16}  result", "-" * 93]
        return "\n".join(lines + [self._line(row) for row in self.rows])

    def summary(self, **extra: Any) -> dict[str, Any]:
        """The JSON summary: date, machine, `extra`, every figure and the keys that missed."""
        return {
            "date": datetime.now(UTC).date().isoformat(),
            "machine": {
                "cores": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            **extra,
            "figures": {
                row["key"]: {
                    "value": round(row["value"], 4),
                    "unit": row["unit"],
                    "target": row["target"],
                    "status": row["status"],
                    **({"note": row["note"]} if row["note"] else {}),
                    **(
                        {"samples": [round(s, 4) for s in row["samples"]]} if row["samples"] else {}
                    ),
                }
                for row in self.rows
            },
            "missed": [row["key"] for row in self.rows if row["status"] == "MISS"],
        }

    def report(self, json_out: Path | None, **extra: Any) -> dict[str, Any]:
        """Print the table and the JSON summary (and write it to `json_out`); the summary."""
        summary = self.summary(**extra)
        text = json.dumps(summary, indent=2)
        print()
        print(self.table())
        print()
        print(text)
        if json_out:
            json_out.write_text(text + "\n", encoding="utf-8")
        return summary


def time_command(
    cmd: list[str], repeat: int, *, expect: int = 0, cpu: list[float] | None = None
) -> list[float]:
    """Wall times of `repeat` runs of `cmd` as a process; any other exit code stops.
    With `cpu`, each run's CPU time (user + system, from the child's rusage) is appended
    to it: on a machine shared with other work the steadier figure."""
    walls = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, check=False)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if cpu is not None:
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != expect:
            raise SystemExit(
                f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr.decode()[-2000:]}"
            )
    return walls


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` of /proc/self/status (the
    process's own), else ``ru_maxrss``, which on Linux also counts the peak of the
    process that started this one (it survives fork and exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
