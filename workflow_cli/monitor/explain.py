"""The figures of a health score in words: the one wording of ``health --explain`` and
of the report's health panel."""

from __future__ import annotations

from typing import Any

from workflow_cli.formats import format_duration, format_size

PART_TITLES = {
    "success": "task success",
    "time": "run time",
    "errors": "errors and retries",
    "resources": "resources",
}


def explain_part(name: str, figures: dict[str, Any]) -> list[str]:
    """The figures of one part of a health score in words (what ``health --explain`` and
    the report print), each count with its percentage."""
    return _explain(name, figures).splitlines()


def _percent(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole else "—"


def _explain(name: str, figures: dict[str, Any]) -> str:
    if name == "success":
        return (
            f"{figures['completed']} completed of {figures['counted']} counted "
            f"({_percent(figures['completed'], figures['counted'])}; {figures['basis']}); "
            f"{figures['failed']} failed"
        )
    if name == "errors":
        line = (
            f"{figures['failed_attempts']} failed attempts of {figures['attempts']} "
            f"({_percent(figures['failed_attempts'], figures['attempts'])}); "
            f"{figures['tasks_retried']} tasks retried, {figures['tasks_failed']} failed"
        )
        worst = figures.get("most_failed_attempts") or []
        if worst:
            line += "; most: " + ", ".join(f"{w['task']} ({w['failed_attempts']})" for w in worst)
        return line
    if name == "time":
        lines = []
        workflow = figures.get("workflow")
        if workflow:
            lines.append(
                f"workflow ran {format_duration(workflow['run_seconds'])} of "
                f"{format_duration(workflow['expected'])} expected ({workflow['source']}): "
                f"{workflow['ratio']:.0%} of it -> {workflow['score']:g}"
            )
        else:
            lines.append("workflow: no expected duration (none set, no earlier runs)")
        tasks = figures.get("tasks") or {}
        if tasks.get("measured"):
            slowest = ", ".join(
                f"{t['task']} {format_duration(t['seconds'])} of {format_duration(t['expected'])}"
                for t in tasks["slowest"]
            )
            lines.append(
                f"{tasks['measured']} tasks with expected durations: mean {tasks['score']:g}; "
                f"slowest {slowest}"
            )
        return "\n".join(lines)
    if figures["samples"] == 0:
        return "no resource samples"
    peaks = figures["peaks"]
    shown = []
    for metric, score in figures["scores"].items():
        levels = figures["thresholds"][metric]
        shown.append(
            f"{metric} peak {peaks[metric]:.0%} (warning {levels['warning']:.0%}, "
            f"critical {levels['critical']:.0%}) -> {score:g}"
        )
    extra = ""
    if "process_rss" in peaks:
        extra = (
            f"\n(cpu is the run's own process tree; machine cpu peak "
            f"{peaks.get('machine_cpu', 0):.0%}, runner tree rss peak "
            f"{format_size(peaks['process_rss'])})"
        )
    return f"{figures['samples']} samples, the lowest counts:\n" + "\n".join(shown) + extra
