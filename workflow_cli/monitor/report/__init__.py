"""The HTML report of one instance: a single self-contained page with its task graph, a
Gantt timeline of every task attempt, its tasks, its health breakdown and its resource
history.

By job: `collect` gathers what the page shows (definition, state, the journal's spans,
health, resource samples); `page` puts it into the page template (``page.html.j2`` with
``report.css``) and writes the file; `graph_svg`, `timeline_svg` and `resources_chart`
draw the pictures as inline SVG on the shared `axis`; `text` formats and escapes.

The page has no script and loads no font, stylesheet or image (its
Content-Security-Policy forbids them too), so it opens anywhere, with no network. Every
text that comes from a definition, a parameter, an error or an agent is HTML-escaped.
Nothing here prints.
"""

from __future__ import annotations

from workflow_cli.monitor.report.collect import ReportData, collect_report
from workflow_cli.monitor.report.page import build_report, render_report, write_report

__all__ = ["ReportData", "build_report", "collect_report", "render_report", "write_report"]
