"""The task graph of a workflow: built once from each task's dependencies, then asked.

One model serves everyone who walks the dependencies: validation (cycles, what a task
may refer to), the scheduler (who waits on whom), control (what a retry or a skip puts
back) and the pictures (how deep each task sits). Dependencies on unknown tasks are
left out (validation reports them); a task listed twice as a dependency counts once.
A ``parallel_group`` is resolved before (`resolve_groups`): the graph sees only tasks.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property

from workflow_cli.readonly import readonly_dataclass


def resolve_groups(
    dependencies: Mapping[str, Iterable[str]], groups: Mapping[str, str | None]
) -> dict[str, tuple[str, ...]]:
    """Each task's dependencies as plain task ids, with ``parallel_group`` resolved.

    A dependency that names a group (and no task) stands for every task of the group;
    the tasks of a group wait for what any of them waits for, so they start together.
    `groups` maps a task to its group (or None)."""
    members: dict[str, list[str]] = {}
    for task, group in groups.items():
        if group and group not in dependencies:
            members.setdefault(group, []).append(task)
    if not members:  # the usual case: each task's own dependencies, once, not itself
        plain: dict[str, tuple[str, ...]] = {}
        for task, found in dependencies.items():
            if isinstance(found, (tuple, list)) and len(found) < 2:
                plain[task] = () if not found or found[0] == task else (found[0],)
                continue
            unique = dict.fromkeys(found)
            unique.pop(task, None)
            plain[task] = tuple(unique)
        return plain

    def expand(task: str, found: Iterable[str]) -> list[str]:
        return [member for dep in found for member in members.get(dep, [dep]) if member != task]

    resolved = {task: expand(task, found) for task, found in dependencies.items()}
    for tasks in members.values():
        shared = [d for task in tasks for d in resolved[task] if d not in tasks]
        for task in tasks:
            resolved[task] = resolved[task] + shared
    return {task: tuple(dict.fromkeys(found)) for task, found in resolved.items()}


@readonly_dataclass
class TaskGraph:
    """Tasks in definition order, each with its dependencies and its dependents."""

    dependencies: Mapping[str, tuple[str, ...]]
    dependents: Mapping[str, tuple[str, ...]]

    @classmethod
    def build(cls, dependencies: Mapping[str, Iterable[str]]) -> TaskGraph:
        """The graph of tasks whose dependencies are `dependencies` (in definition order)."""
        known = dependencies.keys()
        deps: dict[str, tuple[str, ...]] = {}
        for task, found in dependencies.items():
            if isinstance(found, (tuple, list)) and len(found) < 2:
                # none or one: nothing to make unique (most tasks)
                deps[task] = tuple(found) if not found or found[0] in known else ()
                continue
            unique = dict.fromkeys(found)
            if not unique.keys() <= known:  # unknown tasks are left out
                unique = {dep: None for dep in unique if dep in known}
            deps[task] = tuple(unique)
        after: dict[str, list[str]] = {task: [] for task in deps}
        for task, found in deps.items():
            for dep in found:
                after[dep].append(task)
        return cls(deps, {task: tuple(found) for task, found in after.items()})

    def __contains__(self, task: object) -> bool:
        return task in self.dependencies

    def __iter__(self) -> Iterator[str]:
        return iter(self.dependencies)

    def __len__(self) -> int:
        return len(self.dependencies)

    def upstream(self, task: str) -> set[str]:
        """Every task that `task` depends on, directly or not."""
        seen: set[str] = set()
        stack = list(self.dependencies.get(task, ()))
        while stack:
            dep = stack.pop()
            if dep not in seen:
                seen.add(dep)
                stack.extend(self.dependencies[dep])
        return seen

    def depends_on(self, task: str, other: str) -> bool:
        """Whether `task` depends on `other`, directly or not (stops at the first path)."""
        seen: set[str] = set()
        stack = list(self.dependencies.get(task, ()))
        while stack:
            dep = stack.pop()
            if dep == other:
                return True
            if dep not in seen:
                seen.add(dep)
                stack.extend(self.dependencies[dep])
        return False

    def downstream(self, roots: Iterable[str]) -> list[str]:
        """Every task that depends on one of `roots`, directly or not, each once, in the
        order a depth-first walk from the roots meets them."""
        seen: dict[str, None] = {}
        stack = list(roots)
        while stack:
            for dependent in self.dependents[stack.pop()]:
                if dependent not in seen:
                    seen[dependent] = None
                    stack.append(dependent)
        return list(seen)

    def cycle(self) -> list[str] | None:
        """One dependency cycle as a path that ends where it starts (a → b → a), or None."""
        if "_order" not in self.__dict__ and self._acyclic():
            return None  # graphlib (which names the cycle) is needed only when there is one
        return self._order[1]

    def _acyclic(self) -> bool:
        """Whether no task depends on itself through others (Kahn's count: each task
        released once all its dependencies are; a cycle's tasks never are)."""
        waiting = {task: len(found) for task, found in self.dependencies.items()}
        ready = [task for task, count in waiting.items() if not count]
        released = 0
        while ready:
            released += 1
            for dependent in self.dependents[ready.pop()]:
                waiting[dependent] -= 1
                if not waiting[dependent]:
                    ready.append(dependent)
        return released == len(waiting)

    def topological_order(self) -> list[str]:
        """Every task after its dependencies; ValueError naming a cycle if there is one."""
        order, cycle = self._order
        if cycle is not None:
            raise ValueError(f"dependency cycle: {' → '.join(cycle)}")
        return order

    def depths(self) -> dict[str, int]:
        """The longest chain of dependencies above each task (0 for a task with none)."""
        depth: dict[str, int] = {}
        for task in self.topological_order():
            depth[task] = 1 + max((depth[d] for d in self.dependencies[task]), default=-1)
        return depth

    @cached_property
    def _order(self) -> tuple[list[str], list[str] | None]:
        try:
            return list(graphlib.TopologicalSorter(self.dependencies).static_order()), None
        except graphlib.CycleError as exc:
            # graphlib names the cycle from its end: [a, b, a] means a depends on b.
            return [], list(reversed(exc.args[1]))
