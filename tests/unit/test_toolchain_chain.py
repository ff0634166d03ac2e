"""Toolchain chains (build.toolchains, [toolchains]): what planning makes of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_plan import Planner, make_recipe
from wheelfarm.errors import RecipeError
from wheelfarm.plan import config as farm_config
from wheelfarm.plan import jobs as plan
from wheelfarm.plan.config import FarmConfig
from wheelfarm.plan.recipe import load

X86 = "manylinux_2_17_x86_64"


def planned(tmp_path: Path, recipe: object, config: FarmConfig | None = None,
            selection: plan.Selection | None = None) -> plan.Job:
    execs = {"zig": Planner("zig", toolchain="zig-1"), "host": Planner("host", toolchain="gcc-1")}
    [job] = plan.make_plan([recipe], config or FarmConfig(root=tmp_path),  # type: ignore[list-item]
                           selection or plan.Selection(pythons=("cp312",)), execs, ["cp312"])
    return job


def test_a_recipe_chain_is_tried_in_order_and_keyed_as_a_whole(tmp_path: Path) -> None:
    single = planned(tmp_path, make_recipe(tmp_path))
    chained = planned(tmp_path, make_recipe(tmp_path, toolchains=("zig", "host")))
    assert (single.executor, single.fallbacks) == ("zig", ())
    assert (chained.executor, chained.fallbacks, chained.chain) == ("zig", ("host",),
                                                                     ("zig", "host"))
    assert chained.key != single.key
    # A job of one executor keeps the key it always had.
    assert single.key == plan.content_key(make_recipe(tmp_path).digest(), single.target,
                                          "cp312", "zig", "zig-1", ("cp312",))
    # The chain's key changes with any link's toolchain.
    execs = {"zig": Planner("zig", toolchain="zig-1"), "host": Planner("host", toolchain="gcc-2")}
    [other] = plan.make_plan([make_recipe(tmp_path, toolchains=("zig", "host"))],
                             FarmConfig(root=tmp_path), plan.Selection(pythons=("cp312",)),
                             execs, ["cp312"])
    assert other.key != chained.key


def test_executor_flag_pins_one_and_the_farm_config_gives_the_default(tmp_path: Path) -> None:
    config = FarmConfig(root=tmp_path, toolchains=((X86, ("zig", "host")),))
    assert planned(tmp_path, make_recipe(tmp_path), config).chain == ("zig", "host")
    pinned = planned(tmp_path, make_recipe(tmp_path), config,
                     plan.Selection(pythons=("cp312",), executor="zig"))
    assert pinned.chain == ("zig",)
    recipe = make_recipe(tmp_path, toolchains=("host",))
    assert planned(tmp_path, recipe, config).chain == ("host",)
    assert plan.executor_names([make_recipe(tmp_path)], config, plan.Selection()) == {
        "zig", "host"}


def test_every_link_must_build_the_target(tmp_path: Path) -> None:
    execs = {"zig": Planner("zig"), "host": Planner("host", accepts="linux_")}
    with pytest.raises(RecipeError, match="executor 'host' cannot build"):
        plan.make_plan([make_recipe(tmp_path, toolchains=("zig", "host"))],
                       FarmConfig(root=tmp_path), plan.Selection(pythons=("cp312",)),
                       execs, ["cp312"])


def test_recipe_and_config_keys_are_checked(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    body = '[package]\nname = "x"\nversion = "1"\n[source]\npath = "."\n[build]\n'
    recipe.write_text(body + 'toolchains = ["zig", "host"]\n')
    assert load(recipe).toolchains == ("zig", "host")
    recipe.write_text(body + 'toolchains = ["zig", "zig"]\n')
    with pytest.raises(RecipeError, match=r"build.toolchains: expected executors"):
        load(recipe)
    recipe.write_text(body + 'executor = "zig"\ntoolchains = ["zig", "host"]\n')
    with pytest.raises(RecipeError, match=r"build.toolchains: give either"):
        load(recipe)
    config = tmp_path / "wheelfarm.toml"
    config.write_text('[toolchains]\n"manylinux2014_x86_64" = ["zig", "host"]\n')
    assert farm_config.load(tmp_path).toolchains == ((X86, ("zig", "host")),)
    (tmp_path / "wheelfarm.toml").write_text('[toolchains]\n"manylinux2014_x86_64" = []\n')
    with pytest.raises(RecipeError, match=r"wheelfarm.toml: toolchains.manylinux2014_x86_64"):
        farm_config.load(tmp_path)
    (tmp_path / "wheelfarm.toml").write_text('[toolchains]\n"manylinux2014_x86_64" = "zig"\n')
    with pytest.raises(RecipeError, match=r"toolchains.*a table of lists of strings"):
        farm_config.load(tmp_path)
