"""`wheelfarm lock` and `wheelfarm rebuild`: pinned inputs and repeatable builds."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import click

from wheelfarm.build import executors, provenance, reproducible
from wheelfarm.build.archive import sha256_file
from wheelfarm.build.executors import JobContext
from wheelfarm.build.pipeline import Pipeline
from wheelfarm.cli.ui import err, out
from wheelfarm.errors import ConfigError, WheelfarmError
from wheelfarm.farm.localrun import LocalRun, with_needs
from wheelfarm.farm.wheelhouse import Wheelhouse
from wheelfarm.plan import config as farm_config
from wheelfarm.plan import jobs as plan
from wheelfarm.plan import lockfile as lock
from wheelfarm.plan import recipe
from wheelfarm.plan.pythons import parse_tag
from wheelfarm.plan.targets import parse_target
from wheelfarm.publish.storecache import store_cache


@click.command("lock")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--python", "pythons", multiple=True, metavar="cpXY",
              help="Lock for this Python (repeatable) instead of the recipe's pythons.")
@click.option("--farm", "farm_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("."), help="Farm directory (wheelfarm.toml, .wheelfarm/).")
def lock_command(paths: tuple[Path, ...], pythons: tuple[str, ...], farm_dir: Path) -> None:
    """Pin each recipe's build requirements, per Python, in <recipe>.lock.

    Resolves the source's build-system.requires, the recipe's build.requires
    and the backend's dynamic requirements with the farm's index (no pip
    configuration of this machine), and records exact versions and sha256
    hashes. Exit 1 if resolving fails, 2 on bad input.
    """
    config = farm_config.load(farm_dir.resolve())
    selection = plan.Selection.parse((), pythons, None)
    host = executors.get("host", pythons_config=dict(config.python_paths))
    available = host.available_pythons()
    log_dir = config.state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    for r in recipe.discover(list(paths)):
        tags = plan.pythons_for(r, config, selection, available)
        if r.abi3 and r.abi3 not in tags:
            tags.append(r.abi3)
        missing = [t for t in tags if t not in available]
        if missing:
            raise ConfigError(f"{r.path}: {', '.join(missing)} not found on this machine")
        tags.sort(key=parse_tag)
        work = Path(tempfile.mkdtemp(prefix=f"lock-{r.name}-",
                                     dir=_mkdir(config.state_dir / "work")))
        log_path = log_dir / f"lock-{r.name}.log"
        try:
            with log_path.open("w", encoding="utf-8") as fh:
                ctx = JobContext(parse_target("native"), tags[0], work, config.cache_dir, fh)
                with host.open(ctx) as place:
                    result = lock.lock_recipe(r, place, tags, config.cache_dir, work,
                                              config.index_url, fh)
            lock.write(result)
        except WheelfarmError:
            err.print(f"lock {r.name}: see {log_path}")
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        counts = ", ".join(f"{t}: {len(e.packages)}" for t, e in sorted(result.pythons.items()))
        out.print(f"wrote {result.path} ({counts} packages)")


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--recipe", "recipe_path", type=click.Path(path_type=Path),
              help="The recipe to use instead of the path recorded in the provenance.")
@click.option("--farm", "farm_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("."), help="Farm directory (wheelfarm.toml, .wheelfarm/).")
def rebuild(artifact: Path, recipe_path: Path | None, farm_dir: Path) -> None:
    """Re-run an artifact's build from its provenance and compare the bytes.

    ARTIFACT is a wheel with its .intoto.json beside it, or the .intoto.json
    itself. Exit 0 when the rebuild is identical, 1 when it differs or fails.
    """
    statement_path = (artifact if artifact.name.endswith(provenance.SUFFIX)
                      else provenance.path_for(artifact))
    if not statement_path.exists():
        raise ConfigError(f"{artifact}: no provenance ({statement_path.name}) beside it")
    facts = _recorded(statement_path)
    r = recipe.load(recipe_path or Path(facts["recipe_path"]))
    if r.digest() != facts["recipe_digest"]:
        raise ConfigError(f"{r.path}: the recipe changed since {facts['wheel']} was built "
                          "(its settings hash differs)")
    config = farm_config.load(farm_dir.resolve())
    selection = plan.Selection.parse((facts["target"],), (facts["python"],), facts["executor"],
                                     profile=facts["profile"])
    planned = plan.plan_recipes([r], config, selection)
    out_dir = Path(tempfile.mkdtemp(prefix="rebuild-", dir=_mkdir(config.state_dir / "work")))
    try:
        jobs, _added = with_needs(planned.jobs[:1], planned.jobs)
        # The bytes are the question here, not how they compare with upstream's.
        pipeline = Pipeline(config, planned.executors, Wheelhouse(out_dir, index=False),
                            compare_upstream=False, remote=partial(store_cache, config))
        results = LocalRun(pipeline, jobs, 1).run()
        result = results[0]
        if result.wheel is None:
            err.print(f"rebuild failed at {result.step}: {result.message}\n  log: {result.log}")
            raise SystemExit(1)
        digest = sha256_file(result.wheel)
        if digest == facts["sha256"] and result.wheel.name == facts["wheel"]:
            out.print(f"{facts['wheel']}: rebuilt bit for bit (sha256 {digest})")
            return
        err.print(f"{facts['wheel']}: the rebuild differs (sha256 {digest}, "
                  f"recorded {facts['sha256']})")
        original = statement_path.with_name(facts["wheel"])
        if original.exists():
            members = reproducible.differing_members(original, result.wheel)
            err.print("  differing members: " + ", ".join(members))
        raise SystemExit(1)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def _recorded(path: Path) -> dict[str, str]:
    try:
        data = provenance.read(path)
        subject = data["subject"][0]
        params = data["predicate"]["buildDefinition"]["externalParameters"]
        return {
            "wheel": subject["name"], "sha256": subject["digest"]["sha256"],
            "recipe_path": params["recipe"]["path"], "recipe_digest": params["recipe"]["sha256"],
            "target": params["target"], "python": params["python"],
            "executor": params["executor"],
            # Statements from before build profiles were release builds.
            "profile": str(params.get("profile", "release")),
        }
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: not a wheelfarm provenance statement ({exc})") from None


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


COMMANDS: Sequence[click.Command] = [lock_command, rebuild]
