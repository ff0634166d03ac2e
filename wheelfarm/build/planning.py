"""Planning with the executors a farm really has: instantiate the ones the
recipes need, ask them which Pythons they run, and expand the recipes into jobs
(:func:`wheelfarm.plan.jobs.make_plan`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wheelfarm.build import executors as registry
from wheelfarm.build.executors import Executor
from wheelfarm.plan.config import FarmConfig
from wheelfarm.plan.jobs import Job, Selection, executor_names, make_plan
from wheelfarm.plan.pythons import parse_tag
from wheelfarm.plan.recipe import Recipe


@dataclass(frozen=True)
class Planned:
    jobs: list[Job]
    executors: dict[str, Executor]


def plan_recipes(recipes: Sequence[Recipe], config: FarmConfig,
                 selection: Selection) -> Planned:
    """Instantiate the executors the recipes need and plan their jobs."""
    instances = {
        name: registry.get(name, pythons_config=dict(config.python_paths), config=config)
        for name in sorted(executor_names(recipes, config, selection))
    }
    available = sorted({p for e in instances.values() for p in e.available_pythons()},
                       key=parse_tag)
    return Planned(make_plan(recipes, config, selection, instances, available), instances)
