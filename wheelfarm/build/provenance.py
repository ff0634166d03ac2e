"""Provenance: an in-toto statement (SLSA provenance v1) beside every wheel.

It names everything that went into the wheel — the recipe and its hash, the
source and its hash, target, python, executor, toolchain versions, the
locked build requirements, whether the build could reach the network — so a
packager can audit it and ``wheelfarm rebuild`` can repeat it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wheelfarm import __version__, proc
from wheelfarm.build.archive import sha256_file
from wheelfarm.errors import CommandError
from wheelfarm.plan.sourcespec import SourceSpec

if TYPE_CHECKING:
    from wheelfarm.build.debuginfo import DebugFile

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:wheelfarm:build:v1"
SUFFIX = ".intoto.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BuildFacts:
    """What the pipeline learned while building one wheel."""

    recipe_name: str
    recipe_path: str
    recipe_digest: str
    source: Mapping[str, str]  # kind, uri/location, and its digest
    target: str
    python: str
    test_pythons: Sequence[str]
    executor: str
    job_key: str
    source_date_epoch: int
    network: bool
    toolchain: Mapping[str, str]
    build_requirements: Sequence[str]  # name==version, with hashes when locked
    locked: bool
    started: datetime
    finished: datetime
    profile: str = "release"  # the build profile (wheelfarm.plan.profiles.PROFILES)
    debug_files: Sequence[DebugFile] = ()  # split off the wheel's modules (by build-id)
    # build.testplaces: "tested", "built and checked, not run" or "no tests", and
    # where the tests ran or why they did not
    test_status: str = "tested"
    test_note: str = ""
    # build.toolchains: the executors the job could try, in turn ("executor" produced it)
    toolchains: Sequence[str] = ()


def path_for(wheel: Path) -> Path:
    return wheel.with_name(wheel.name + SUFFIX)


def statement(wheel: Path, facts: BuildFacts) -> dict[str, Any]:
    def stamp(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    run_details: dict[str, Any] = {
        "builder": {"id": f"urn:wheelfarm:{__version__}"},
        "metadata": {
            "invocationId": facts.job_key,
            "startedOn": stamp(facts.started),
            "finishedOn": stamp(facts.finished),
        },
    }
    # Read back by wheelfarm.build.testplaces.recorded (reports, the index).
    run_details["testResult"] = {"status": facts.test_status,
                                 "pythons": list(facts.test_pythons) if facts.test_status
                                 == "tested" else [],
                                 **({"note": facts.test_note} if facts.test_note else {})}
    if facts.debug_files:
        run_details["byproducts"] = [
            {"name": f"buildid/{f.build_id}/debuginfo", "digest": {"sha256": f.sha256},
             "annotations": {"buildId": f.build_id, "module": f.module, "size": f.size}}
            for f in sorted(facts.debug_files, key=lambda f: f.module)]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": wheel.name, "digest": {"sha256": sha256_file(wheel)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "recipe": {"name": facts.recipe_name, "path": facts.recipe_path,
                               "sha256": facts.recipe_digest},
                    "target": facts.target,
                    "python": facts.python,
                    "testPythons": list(facts.test_pythons),
                    "executor": facts.executor,
                    "profile": facts.profile,
                    **({"toolchains": list(facts.toolchains)} if facts.toolchains else {}),
                },
                "internalParameters": {
                    "jobKey": facts.job_key,
                    "sourceDateEpoch": facts.source_date_epoch,
                    "network": facts.network,
                    "toolchain": dict(sorted(facts.toolchain.items())),
                    "lockedBuildRequirements": facts.locked,
                },
                "resolvedDependencies": [
                    dict(facts.source),
                    *({"uri": f"pypi:{req}"} for req in facts.build_requirements),
                ],
            },
            "runDetails": run_details,
        },
    }


def write(wheel: Path, facts: BuildFacts, dest: Path) -> Path:
    """Write the statement for ``wheel`` to ``dest`` (a file path)."""
    dest.write_text(json.dumps(statement(wheel, facts), indent=2, sort_keys=True) + "\n",
                    encoding="utf-8")
    return dest


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def executor_of(wheel: Path) -> str:
    """The executor that built ``wheel``, from the provenance beside it ("" if unknown)."""
    try:
        return str(read(path_for(wheel))["predicate"]["buildDefinition"]
                   ["externalParameters"]["executor"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def job_key(statement: bytes | None) -> tuple[str, str] | None:
    """(job key, sha256 of the wheel) a wheelfarm statement names; None for anything
    else (no statement, not JSON, another kind of statement)."""
    if statement is None:
        return None
    try:
        data = json.loads(statement)
        key = data["predicate"]["buildDefinition"]["internalParameters"]["jobKey"]
        sha256 = data["subject"][0]["digest"]["sha256"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    # Both become parts of store keys: only hex digests, nothing that could name a path.
    if all(isinstance(v, str) and _HEX64.fullmatch(v) for v in (key, sha256)):
        return key, sha256
    return None


def debug_files(statement: bytes | None) -> list[tuple[str, str, str]]:
    """(build-id, module, sha256) of each debug file a statement names as a byproduct;
    malformed entries are left out (a build-id or digest that is not hex could name a path)."""
    if statement is None:
        return []
    try:
        items = json.loads(statement)["predicate"]["runDetails"].get("byproducts", [])
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        try:
            build_id = item["annotations"]["buildId"]
            module = item["annotations"]["module"]
            sha256 = item["digest"]["sha256"]
        except (KeyError, TypeError):
            continue
        if (isinstance(build_id, str) and re.fullmatch(r"(?:[0-9a-f]{2}){8,64}", build_id)
                and isinstance(sha256, str) and _HEX64.fullmatch(sha256)
                and isinstance(module, str)):
            out.append((build_id, module, sha256))
    return out


@functools.cache
def _version_line(argv: tuple[str, ...]) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    try:
        out = proc.run(argv, timeout=30, check=False).stdout
    except CommandError:
        return ""
    return out.strip().splitlines()[0] if out.strip() else ""


def host_toolchain() -> dict[str, str]:
    """Versions of the host tools a build may use (cached per process)."""
    facts = {
        "wheelfarm": __version__,
        # The build frontend is not the farm's: it is one of the build environment's
        # requirements, which the provenance lists with their versions.
        "auditwheel": importlib.metadata.version("auditwheel"),
        "platform": platform.platform(),
        "glibc": os.confstr("CS_GNU_LIBC_VERSION") or "",
    }
    for name, argv in (("gcc", ("gcc", "--version")), ("rustc", ("rustc", "--version")),
                       ("cargo", ("cargo", "--version"))):
        line = _version_line(argv)
        if line:
            facts[name] = line
    return facts


def source_facts(spec: SourceSpec) -> dict[str, str]:
    """The source as the provenance names it: a URI and a digest."""
    identity = spec.identity()
    if spec.kind == "git":
        return {"uri": f"git+{spec.location}@{spec.rev}", "digest": f"gitCommit:{spec.rev}"}
    if spec.kind in ("pypi", "url"):
        where = spec.location or f"pypi:{spec.name}=={spec.version}"
        return {"uri": where, "digest": f"sha256:{spec.sha256}"}
    return {"uri": f"file:{spec.location}", "digest": identity.split(":", 1)[1]}
