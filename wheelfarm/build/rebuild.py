"""Rebuilding a published artifact: what its provenance recorded, and whether a
new build gave the same bytes. Running the build is the caller's part."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wheelfarm.build import provenance, reproducible
from wheelfarm.build.archive import sha256_file
from wheelfarm.errors import ConfigError
from wheelfarm.plan import recipe


@dataclass(frozen=True)
class Recorded:
    """What a provenance statement says about the wheel it names."""

    statement: Path
    wheel: str
    sha256: str
    recipe_path: str
    recipe_digest: str
    target: str
    python: str
    executor: str
    profile: str


@dataclass(frozen=True)
class Comparison:
    wheel: str  # the recorded wheel's name
    digest: str  # the rebuilt wheel's sha256
    recorded: str  # the sha256 the provenance names
    identical: bool
    # Members whose bytes differ; None when the original wheel is not beside
    # its statement (nothing to compare member by member).
    members: list[str] | None = None


def recorded(artifact: Path) -> Recorded:
    """The facts of ``artifact``: a wheel with its statement beside it, or the
    statement itself. A ConfigError when there is none or it is not ours."""
    statement = (artifact if artifact.name.endswith(provenance.SUFFIX)
                 else provenance.path_for(artifact))
    if not statement.exists():
        raise ConfigError(f"{artifact}: no provenance ({statement.name}) beside it")
    try:
        data = provenance.read(statement)
        subject = data["subject"][0]
        params = data["predicate"]["buildDefinition"]["externalParameters"]
        fields = {"wheel": subject["name"], "sha256": subject["digest"]["sha256"],
                  "recipe_path": params["recipe"]["path"],
                  "recipe_digest": params["recipe"]["sha256"], "target": params["target"],
                  "python": params["python"], "executor": params["executor"],
                  # Statements from before build profiles were release builds.
                  "profile": params.get("profile", "release")}
        odd = sorted(k for k, v in fields.items() if not isinstance(v, str) or "\0" in v)
        if odd:
            raise TypeError(f"{', '.join(odd)}: not a string")
        return Recorded(statement=statement, **fields)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{statement}: not a wheelfarm provenance statement ({exc})") from None


def load_recipe(facts: Recorded, recipe_path: Path | None = None) -> recipe.Recipe:
    """The recipe the wheel was built from (or ``recipe_path``), refused when its
    settings changed since: a rebuild of other inputs would prove nothing."""
    path = recipe_path or Path(facts.recipe_path)
    if path.name in ("pyproject.toml", "setup.py"):
        # A project directory's implicit recipe records its project file; the
        # recipe is read from the directory, as `wheelfarm build DIR` read it.
        path = path.parent
    r = recipe.load(path)
    if r.digest() != facts.recipe_digest:
        raise ConfigError(f"{r.path}: the recipe changed since {facts.wheel} was built "
                          "(its settings hash differs)")
    return r


def compare(facts: Recorded, rebuilt: Path) -> Comparison:
    """The rebuilt wheel against the recorded one: same name and same sha256."""
    digest = sha256_file(rebuilt)
    if digest == facts.sha256 and rebuilt.name == facts.wheel:
        return Comparison(facts.wheel, digest, facts.sha256, identical=True)
    original = facts.statement.with_name(facts.wheel)
    members = reproducible.differing_members(original, rebuilt) if original.exists() else None
    return Comparison(facts.wheel, digest, facts.sha256, identical=False, members=members)
