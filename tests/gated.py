"""A workspace template whose first task waits (bounded) for a file the test writes:
a run that is going for exactly as long as a test needs it to."""

from __future__ import annotations

import json
import sys
from pathlib import Path

WAIT_LIMIT = 60.0

HOLD = """\
import json, os, sys, time
params = json.load(sys.stdin)
deadline = time.monotonic() + 60
while not os.path.exists(params["flag"]):
    if time.monotonic() > deadline:
        sys.exit(3)
    time.sleep(0.01)
print(json.dumps({"released": params["flag"]}))
"""


def write_gated_template(workspace: Path) -> None:
    """`gated`: hold (waits for the file named by its `flag` parameter), then done
    (echo). The agent `hold` is a command agent in agents.yaml."""
    (workspace / "hold.py").write_text(HOLD)
    agents = {"agents": {"hold": {"command": [sys.executable, str(workspace / "hold.py")]}}}
    (workspace / "agents.yaml").write_text(json.dumps(agents))
    template = {
        "name": "gated",
        "description": "waits for a file, then echoes",
        "parameters": {"flag": {"type": "string", "default": "release.flag"}},
        "workflow": {
            "id": "gated",
            "name": "gated",
            "version": "1",
            "schema_version": "2.0.0",
            "tasks": {
                "hold": {
                    "action": "agent_task",
                    "agent_id": "hold",
                    "parameters": {"flag": "{{ params.flag }}"},
                },
                "done": {
                    "action": "agent_task",
                    "agent_id": "echo",
                    "dependencies": ["hold"],
                    "parameters": {"after": "hold"},
                },
            },
        },
    }
    (workspace / "templates").mkdir(exist_ok=True)
    (workspace / "templates" / "gated.json").write_text(json.dumps(template))


def release(workspace: Path, flag: str = "release.flag") -> None:
    (workspace / flag).write_text("go")


REVIEW_SCHEMA = {
    "type": "object",
    "required": ["approved"],
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
}


def write_review_template(workspace: Path) -> None:
    """`review`: a mailbox agent `reviewer` (declared in agents.yaml) is given the report
    to review, and waits for its delivery (an object with `approved`, as its
    output_schema says); then `after` reads the delivered output."""
    (workspace / "agents.yaml").write_text(json.dumps({"agents": {"reviewer": {"mailbox": True}}}))
    template = {
        "name": "review",
        "description": "a review by a mailbox agent, then a step that reads it",
        "parameters": {"report": {"type": "string", "default": "q3.txt"}},
        "workflow": {
            "id": "review",
            "name": "review",
            "version": "1",
            "schema_version": "2.0.0",
            "tasks": {
                "review": {
                    "action": "agent_task",
                    "agent_id": "reviewer",
                    "description": "Read the report; say whether it may go out.",
                    "parameters": {"report": "{{ params.report }}", "pages": 12},
                    "output_schema": REVIEW_SCHEMA,
                },
                "after": {
                    "action": "condition_check",
                    "dependencies": ["review"],
                    "parameters": {"expression": "steps.review.output.approved"},
                },
            },
        },
    }
    (workspace / "templates").mkdir(exist_ok=True)
    (workspace / "templates" / "review.json").write_text(json.dumps(template))
