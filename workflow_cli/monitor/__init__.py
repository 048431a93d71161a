"""Monitoring: watching instances, explaining them, scoring their health.

Nothing here prints; the CLI renders what these functions return.

=============== ================================================================
module          job
=============== ================================================================
``follow``      follow one instance's journal as it is appended
``graph``       the task graph of a template or an instance, as data and text
``debug``       the debug account of an instance's failed or stuck tasks
``report``      the self-contained HTML report of one instance
``health``      the 0-100 health score of one instance (pure scoring) and
                ``monitoring/instances/ID.json``
``alerts``      ``monitoring/alerts.jsonl``: append safely, read and filter
``resources``   resource sampling during a run, thresholds, ``resources.jsonl``
``machine``     what the machine and a process use (``/proc`` on Linux, else psutil)
``summary``     ``monitoring/health.json`` and ``monitoring/metrics.prom``
``session``     ``monitored_run``: sampling and health refreshes around a run
=============== ================================================================
"""
