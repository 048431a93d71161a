"""What ``workflow_cli migrate`` does: definitions carried to the current schema version.

- `migration_status`: templates, workspace definition files and instances by version.
- `migrate_file`: a definition or template file (a workspace template by name) migrated
  and rewritten atomically in its own format (YAML stays YAML), with the diff.
- `migrate_instance` / `undo_instance_migration`: an instance's ``definition.json``
  migrated through a journaled ``definition_migrated`` event; the definition before is
  kept beside it (``definition.VERSION.json``), so the migration can be undone.

The migration steps themselves are `workflow_cli.definition.migrations` (pure).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from workflow_cli.definition.loader import load_document, load_plain, parse_document
from workflow_cli.definition.migrations import (
    CURRENT_VERSION,
    VERSIONS,
    migrate,
    normalize,
    schema_version_of,
)
from workflow_cli.definition.templates import (
    TEMPLATE_SUFFIXES,
    builtin_dir,
    template_files,
    template_names,
)
from workflow_cli.definition.validation import schema_problems
from workflow_cli.engine.control.guards import no_runner
from workflow_cli.errors import (
    DefinitionError,
    NotFoundError,
    Problem,
    StateError,
    UsageError,
    WorkflowCliError,
)
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store import events as ev
from workflow_cli.store.files import read_text, write_atomic
from workflow_cli.store.instances import (
    DEFINITION_FILE,
    append_events,
    definition_text,
    load_definition,
    open_journal,
)
from workflow_cli.store.journal import Clock, Record
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace


@readonly_dataclass
class Migration:
    """One definition carried (or to be carried) to a newer version."""

    target: str  # a file path, or an instance id
    kind: str  # "template", "definition" or "instance"
    from_version: str
    to_version: str
    diff: str  # unified diff, empty when there is nothing to change
    written: bool  # False for a dry run or when nothing changed

    @property
    def changed(self) -> bool:
        return self.from_version != self.to_version


# -- files ---------------------------------------------------------------------------------


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def dump_document(document: Any, *, yaml_syntax: bool) -> str:
    """A document as the rewrite writes it: JSON indented by two, or block-style YAML
    in the document's own key order."""
    if not yaml_syntax:
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    import yaml

    text: str = yaml.safe_dump(
        document, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    return text


def has_yaml_comments(text: str) -> bool:
    """Whether YAML `text` holds a comment (a ``#`` outside every scalar), which a
    rewrite would lose."""
    import yaml

    if "#" not in text:
        return False
    spans = []
    try:
        for token in yaml.scan(text):
            if isinstance(token, yaml.ScalarToken):
                spans.append((token.start_mark.index, token.end_mark.index))
    except yaml.YAMLError:
        return True  # cannot tell: treat it as having some
    cursor = 0
    while (found := text.find("#", cursor)) >= 0:
        if not any(start <= found < end for start, end in spans):
            return True
        cursor = found + 1
    return False


def resolve_target(workspace: Workspace, ref: str) -> Path:
    """The file `ref` names: a path, or the name of a workspace template. A built-in
    template ships with the package and is not rewritten."""
    path = Path(ref)
    if path.suffix.lower() in TEMPLATE_SUFFIXES and path.is_file():
        return path
    for suffix in TEMPLATE_SUFFIXES:
        candidate = workspace.templates_dir / f"{ref}{suffix}"
        if candidate.is_file():
            return candidate
    if ref in template_names(workspace.templates_dir):
        raise UsageError(
            f"'{ref}' is a built-in template; it ships on schema {CURRENT_VERSION} and is"
            " not rewritten (copy it into templates/ to change it)"
        )
    raise NotFoundError(f"no definition or workspace template '{ref}'")


def migrate_document(document: dict[str, Any], source: str) -> tuple[dict[str, Any], str]:
    """A definition or template document migrated to the current version (a template's
    ``workflow`` body), and the version it was on. Problems under its own version's
    schema are a DefinitionError: only a valid definition is migrated."""
    is_template = isinstance(document.get("workflow"), dict)
    body = document["workflow"] if is_template else document
    version = schema_version_of(body)
    if version not in VERSIONS:
        problem = Problem("/schema_version", f"unknown schema version '{version}'")
        raise DefinitionError(source, [problem])
    normalized, problems = normalize(body)
    problems += schema_problems(normalized, version)
    if problems:
        prefix = "/workflow" if is_template else ""
        raise DefinitionError(source, [Problem(prefix + p.pointer, p.message) for p in problems])
    migrated, _ = migrate(body)
    if is_template:
        return {**document, "workflow": migrated}, version
    return migrated, version


def migrate_file(workspace: Workspace, ref: str, *, dry_run: bool) -> Migration:
    """Migrate the file `ref` names (see `resolve_target`) and, unless `dry_run`,
    rewrite it atomically in its own format. A YAML file with comments is refused
    (a rewrite would lose them): the diff shows what to change by hand."""
    path = resolve_target(workspace, ref)
    document = load_plain(path)
    if not isinstance(document, dict):
        raise DefinitionError(str(path), [Problem("", "must be an object")])
    kind = "template" if isinstance(document.get("workflow"), dict) else "definition"
    migrated, version = migrate_document(document, str(path))
    yaml_syntax = _is_yaml(path)
    before = dump_document(document, yaml_syntax=yaml_syntax)
    after = dump_document(migrated, yaml_syntax=yaml_syntax)
    diff = _diff(before, after, str(path))
    to_version = schema_version_of(migrated.get("workflow", migrated))
    if version == to_version or dry_run:
        return Migration(str(path), kind, version, to_version, diff, written=False)
    text = path.read_text(encoding="utf-8")
    if yaml_syntax and has_yaml_comments(text):
        raise UsageError(
            f"{path} has comments, which rewriting it would lose; change it by hand as"
            f" 'workflow_cli migrate {ref} --dry-run' shows"
        )
    parse_document(after, str(path), yaml_syntax=yaml_syntax)  # what is written reads back
    write_atomic(path, after.encode("utf-8"), mode=None)
    return Migration(str(path), kind, version, to_version, diff, written=True)


def _diff(before: str, after: str, name: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"{name} (before)",
        tofile=f"{name} (after)",
    )
    return "".join(lines)


def workspace_definition_files(workspace: Workspace) -> list[Path]:
    """Definition and template files of the workspace: its ``templates/`` folder and
    the definitions (objects with ``tasks``) at its top level."""
    found: list[Path] = []
    for folder, templates in ((workspace.templates_dir, True), (workspace.root, False)):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in TEMPLATE_SUFFIXES or not path.is_file():
                continue
            if templates or _looks_like_definition(path):
                found.append(path)
    return found


def _looks_like_definition(path: Path) -> bool:
    try:
        document = load_document(path)
    except DefinitionError:
        return False
    return isinstance(document, dict) and ("tasks" in document or "workflow" in document)


def _file_version(path: Path) -> str:
    try:
        document = load_document(path)
    except DefinitionError:
        return "unreadable"
    if not isinstance(document, dict):
        return "unreadable"
    body = document.get("workflow", document)
    return schema_version_of(body) if isinstance(body, dict) else "unreadable"


# -- instances -----------------------------------------------------------------------------


def kept_name(version: str) -> str:
    return f"definition.{version}.json"


def migrate_instance(
    workspace: Workspace, instance_id: str, *, by: str, clock: Clock, dry_run: bool = False
) -> Migration:
    """Migrate an instance's definition.json to the current version through a journaled
    ``definition_migrated`` event; the definition before is kept beside it. Refused
    while a runner executes the instance (exit 4).

    The event is appended before definition.json is rewritten: a migration cut short
    between the two is finished by running it again (no second event)."""
    if dry_run:
        return _plan_instance(workspace, instance_id, written=False)
    folder = workspace.instance_dir(instance_id)
    with no_runner(workspace, instance_id, "migrate it"):
        plan = _plan_instance(workspace, instance_id, written=True)
        if not plan.changed:
            return replace(plan, written=False)
        before = load_definition(workspace, instance_id, as_written=True)
        kept = kept_name(plan.from_version)
        _write_definition(folder / kept, before)

        def decide(state: State) -> list[Record]:
            migrations = state.get("definition_migrations") or []
            last = migrations[-1] if migrations else {}
            if (last.get("from_version"), last.get("to_version")) == (
                plan.from_version,
                plan.to_version,
            ):
                return []  # journaled by a migration cut short: only the file is left to do
            return [ev.definition_migrated(plan.from_version, plan.to_version, kept=kept, by=by)]

        _journaled(workspace, instance_id, clock, decide)
        _write_definition(folder / DEFINITION_FILE, migrate(before)[0])
    return plan


def _plan_instance(workspace: Workspace, instance_id: str, *, written: bool) -> Migration:
    """What migrating the instance's definition changes."""
    before = load_definition(workspace, instance_id, as_written=True)
    version = schema_version_of(before)
    if version not in VERSIONS:
        raise StateError(f"instance {instance_id} is on unknown schema version '{version}'")
    after, _ = migrate(before)
    diff = _diff(
        dump_document(before, yaml_syntax=False),
        dump_document(after, yaml_syntax=False),
        f"{instance_id}/{DEFINITION_FILE}",
    )
    to_version = schema_version_of(after)
    return Migration(instance_id, "instance", version, to_version, diff, written=written)


def undo_instance_migration(
    workspace: Workspace, instance_id: str, *, by: str, clock: Clock
) -> Migration:
    """Put back the definition the instance's last migration kept, journaled. The file
    is put back before the event is appended: an undo cut short between the two is
    finished by running it again."""
    folder = workspace.instance_dir(instance_id)
    with no_runner(workspace, instance_id, "undo its migration"):
        current = load_definition(workspace, instance_id, as_written=True)
        undone: list[tuple[dict[str, Any], Any]] = []

        def decide(state: State) -> list[Record]:
            migrations = state.get("definition_migrations") or []
            if not migrations:
                raise StateError(f"instance {instance_id} has no migration to undo")
            last = migrations[-1]
            try:
                kept = json.loads(read_text(folder / last["kept"]))
            except (OSError, ValueError) as exc:
                raise StateError(f"the kept definition cannot be read: {exc}") from exc
            _write_definition(folder / DEFINITION_FILE, kept)
            undone.append((last, kept))
            return [ev.definition_migration_undone(last["to_version"], last["from_version"], by=by)]

        _journaled(workspace, instance_id, clock, decide)
    last, kept = undone[0]
    diff = _diff(
        dump_document(current, yaml_syntax=False),
        dump_document(kept, yaml_syntax=False),
        f"{instance_id}/{DEFINITION_FILE}",
    )
    return Migration(
        instance_id, "instance", last["to_version"], last["from_version"], diff, written=True
    )


def _write_definition(path: Path, definition: dict[str, Any]) -> None:
    """An instance's definition file, written as create writes it."""
    write_atomic(path, definition_text(definition).encode("utf-8"))


def _journaled(
    workspace: Workspace, instance_id: str, clock: Clock, decide: Callable[[State], list[Record]]
) -> None:
    journal = open_journal(workspace, instance_id, clock)
    try:
        append_events(journal, decide)
    finally:
        journal.close()


# -- status and everything ------------------------------------------------------------------


def migration_status(workspace: Workspace) -> dict[str, Any]:
    """Templates, workspace definition files and instances, each with its schema
    version, and how many of each are on each version."""
    templates: list[dict[str, Any]] = []
    # The files the templates are read from: a name's file may be `NAME.JSON`, or not a
    # file at all (then shown unreadable, as `templates` refuses it).
    for name, path in template_files(workspace.templates_dir).items():
        templates.append(
            {
                "name": name,
                "path": str(path),
                "builtin": path.parent == builtin_dir(),
                "version": _file_version(path),
            }
        )
    template_paths = {entry["path"] for entry in templates}
    definitions: list[dict[str, Any]] = [
        {"path": str(path), "version": _file_version(path)}
        for path in workspace_definition_files(workspace)
        if str(path) not in template_paths
    ]
    instances: list[dict[str, Any]] = []
    for instance_id in workspace.instance_ids():
        try:
            written = load_definition(workspace, instance_id, as_written=True)
        except WorkflowCliError:  # an unreadable instance is shown as such, not fatal
            instances.append({"id": instance_id, "version": "unreadable"})
            continue
        instances.append({"id": instance_id, "version": schema_version_of(written)})
    counts: dict[str, dict[str, int]] = {}
    for group, entries in (
        ("templates", templates),
        ("definitions", definitions),
        ("instances", instances),
    ):
        for entry in entries:
            bucket = counts.setdefault(group, {})
            bucket[entry["version"]] = bucket.get(entry["version"], 0) + 1
    return {
        "current": CURRENT_VERSION,
        "versions": list(VERSIONS),
        "templates": templates,
        "definitions": definitions,
        "instances": instances,
        "counts": counts,
    }


def migrate_all(
    workspace: Workspace, *, by: str, clock: Clock, dry_run: bool
) -> tuple[list[Migration], list[str]]:
    """Every workspace file and instance not on the current version, migrated (or, with
    `dry_run`, what would be); and what could not be migrated, one line each."""
    done: list[Migration] = []
    failed: list[str] = []
    status = migration_status(workspace)
    files = [e["path"] for e in status["templates"] if not e["builtin"]]
    files += [e["path"] for e in status["definitions"]]
    for path in files:
        if _file_version(Path(path)) in (CURRENT_VERSION, "unreadable"):
            continue
        try:
            done.append(migrate_file(workspace, path, dry_run=dry_run))
        except WorkflowCliError as exc:
            failed.append(f"{path}: {exc.message}")
    for entry in status["instances"]:
        if entry["version"] in (CURRENT_VERSION, "unreadable"):
            continue
        try:
            done.append(
                migrate_instance(workspace, entry["id"], by=by, clock=clock, dry_run=dry_run)
            )
        except WorkflowCliError as exc:
            failed.append(f"{entry['id']}: {exc.message}")
    return done, failed
