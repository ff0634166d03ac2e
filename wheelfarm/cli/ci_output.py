"""Reports for machines and CI engines: a JSON report, GitHub Actions log
groups, error annotations and the step summary."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import click

from wheelfarm.build.pipeline import JobResult
from wheelfarm.build.testplaces import NOT_RUN
from wheelfarm.plan.jobjson import document, job_json, when

_STATE = {"ok": "succeeded", "cached": "cached", "failed": "failed"}


def _not_run(r: JobResult) -> str:
    return f" ({r.test_status})" if r.test_status == NOT_RUN and r.status != "failed" else ""


def result_json(r: JobResult) -> dict[str, object]:
    attempt = {"n": 1, "worker": "local", "started": when(r.started_at),
               "ended": when(r.started_at + r.seconds),
               "reason": r.message or None, "log": str(r.log),
               "cause": r.cause.value if r.cause else None}
    artifact = None
    if r.wheel is not None:
        from wheelfarm.build.archive import sha256_file

        artifact = (r.wheel.name, sha256_file(r.wheel))
    data = job_json(r.job.key, r.job.recipe.name, r.job.target.name, r.job.python,
                    _STATE[r.status], [attempt], artifact,
                    cause=r.cause.value if r.cause else None, owners=r.job.recipe.owners)
    # the executor that built the wheel (of the job's build.toolchains), or failed last
    data["toolchain"] = r.toolchain or None
    if r.parity is not None:
        data["parity"] = r.parity.to_json()
    # "tested", "built and checked, not run" (nothing here runs the wheel) or "no
    # tests", with where the tests ran or why not; null for a failure
    data["test"] = ({"status": r.test_status, "note": r.test_note} if r.test_status
                    else None)
    return data


def write_json(results: Sequence[JobResult], dest: str) -> None:
    text = json.dumps(document([result_json(r) for r in results]), indent=2) + "\n"
    if dest == "-":
        click.echo(text, nl=False)
    else:
        Path(dest).write_text(text, encoding="utf-8")


def github(results: Sequence[JobResult]) -> None:
    """Log groups per job, an ``::error`` pointing at the recipe of each failure,
    and a Markdown table in ``$GITHUB_STEP_SUMMARY``."""
    for r in results:
        print(f"::group::{r.job.id} ({_STATE[r.status]}, {r.seconds:.1f}s)", flush=True)
        print(r.log.read_text(encoding="utf-8", errors="replace")[-20000:], flush=True)
        print("::endgroup::", flush=True)
    for r in results:
        if r.status == "failed":
            message = f"{r.step}: {r.message}".replace("%", "%25").replace("\n", "%0A")
            print(f"::error file={r.job.recipe.path},title={r.job.id} failed::{message}",
                  flush=True)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        lines = ["| recipe | python | target | result | seconds | wheel |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| {r.job.recipe.name} | {r.job.python} | {r.job.target.name} | "
                  f"{_STATE[r.status]}{_not_run(r)} | {r.seconds:.1f} | "
                  f"{r.wheel.name if r.wheel else ''} |"
                  for r in results]
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write("### wheelfarm build\n\n" + "\n".join(lines) + "\n")
