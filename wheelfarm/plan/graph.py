"""The dependency graph of recipes: ``build.needs``, its cycles, and the jobs a
selection of jobs needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from wheelfarm.errors import ConfigError

if TYPE_CHECKING:  # not at run time: `submit --probe` should start quickly
    from wheelfarm.plan.jobs import Job
    from wheelfarm.plan.recipe import Recipe


def check_cycles(recipes: Sequence[Recipe]) -> None:
    """A recipe that needs itself, directly or not, is a ConfigError naming the cycle."""
    graph: dict[str, list[str]] = {canonicalize_name(r.name): list(r.needs) for r in recipes}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node):], node]
            raise ConfigError(f"build.needs makes a cycle: {' -> '.join(cycle)}")
        if node in done:
            return
        for nxt in graph.get(node, ()):
            visit(nxt, [*path, node])
        done.add(node)

    for start in sorted(graph):
        visit(start, [])



def with_needs(selected: Sequence[Job], planned: Sequence[Job]) -> tuple[list[Job], list[Job]]:
    """``selected`` and the jobs of ``planned`` they need, transitively, in plan order;
    and, second, those that were added.

    A job needs the job of each recipe in its ``build.needs`` for the same
    target and python. ConfigError when ``planned`` has none.
    """
    provides: dict[tuple[str, str, str], Job] = {
        (canonicalize_name(j.recipe.name), j.target.name, j.python): j for j in planned}
    chosen = {j.key for j in selected}
    todo = list(selected)
    while todo:
        job = todo.pop()
        for need in job.recipe.needs:
            dep = provides.get((need, job.target.name, job.python))
            if dep is None:
                raise ConfigError(
                    f"{job.recipe.name} needs {need}, but no recipe of this build makes "
                    f"{need} for {job.target.name} and {job.python}; give its recipe too")
            if dep.key not in chosen:
                chosen.add(dep.key)
                todo.append(dep)
    ordered: list[Job] = []
    seen: set[str] = set()
    for job in planned:
        if job.key in chosen and job.key not in seen:
            seen.add(job.key)
            ordered.append(job)
    asked = {j.key for j in selected}
    return ordered, [j for j in ordered if j.key not in asked]
