"""Planning with the executors a farm really has: instantiate the ones the
recipes need, ask them which Pythons they run, and expand the recipes into jobs
(:func:`wheelfarm.plan.jobs.make_plan`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from wheelfarm.build import executors as registry
from wheelfarm.build.executors import Executor
from wheelfarm.plan.config import FarmConfig
from wheelfarm.plan.jobs import Job, Selection, executor_names, make_plan, skipped_pythons
from wheelfarm.plan.pythons import parse_tag
from wheelfarm.plan.recipe import Recipe


@dataclass(frozen=True)
class Planned:
    jobs: list[Job]
    executors: dict[str, Executor]
    # "<recipe>: <python> ... skipped" for each default Python a Requires-Python excludes
    skipped: list[str] = field(default_factory=list)


def plan_recipes(recipes: Sequence[Recipe], config: FarmConfig,
                 selection: Selection) -> Planned:
    """Instantiate the executors the recipes need and plan their jobs."""
    instances = {
        name: registry.get(name, pythons_config=dict(config.python_paths), config=config)
        for name in sorted(executor_names(recipes, config, selection))
    }
    available = sorted({p for e in instances.values() for p in e.available_pythons()},
                       key=parse_tag)
    jobs = make_plan(recipes, config, selection, instances, available)
    skipped = []
    for r in recipes:
        left_out = skipped_pythons(r, config, selection, available)
        if left_out:
            skipped.append(f"{r.name}: {', '.join(left_out)} skipped (Requires-Python "
                           f"{r.requires_python})")
    return Planned(jobs, instances, skipped)
