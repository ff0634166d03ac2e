"""The one pipeline: source -> toolchain -> build -> repair/check -> test -> output.

Written once for every executor; an executor only supplies the place where
the commands run. One job's failure never touches another job or the output
directory: a wheel reaches ``out_dir`` only after it passed every step, and
it gets there by an atomic rename.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from . import buildenv, index, repair, source
from .config import FarmConfig
from .errors import BuildError, CommandError, TestFailure, WheelfarmError
from .executors import Executor, JobContext, Place
from .plan import Job
from .recipe import TestSpec

STEPS = ("source", "toolchain", "build", "repair", "test", "output")
Status = Literal["ok", "failed"]
OnStep = Callable[[Job, str], None]

# Run by the build environment's interpreter: asks the backend for its
# dynamic build requirements (PEP 517 get_requires_for_build_wheel).
_GET_REQUIRES = (
    "import build, json, sys\n"
    "reqs = build.ProjectBuilder(sys.argv[1]).get_requires_for_build('wheel')\n"
    "print('WHEELFARM-REQUIRES:' + json.dumps(sorted(reqs)))\n"
)


@dataclass(frozen=True)
class JobResult:
    job: Job
    status: Status
    seconds: float
    log: Path
    wheel: Path | None = None
    step: str | None = None  # the failing step
    message: str = ""
    tail: str = ""  # the end of the log, for a failure


class Pipeline:
    def __init__(self, config: FarmConfig, executors: Mapping[str, Executor], out_dir: Path,
                 *, on_step: OnStep | None = None, keep_work: bool = False) -> None:
        self.config = config
        self.executors = executors
        self.out_dir = out_dir
        self.on_step = on_step
        self.keep_work = keep_work
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"{stamp}-", dir=self._mkdir("logs")))
        self._fetch_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._out_lock = threading.Lock()

    def _mkdir(self, name: str) -> Path:
        path = self.config.state_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run(self, jobs: Sequence[Job], parallel: int) -> list[JobResult]:
        """Run every job, ``parallel`` at a time, then rewrite the output's index."""
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            results = list(pool.map(self.run_job, jobs))
        if any(r.status == "ok" for r in results):
            index.write_simple_index(self.out_dir)
        return results

    def run_job(self, job: Job) -> JobResult:
        started = time.monotonic()
        log_path = self.log_dir / f"{job.id}.log"
        work = Path(tempfile.mkdtemp(prefix=f"{job.id}-", dir=self._mkdir("work")))
        state = _State()
        wheel: Path | None = None
        message = ""
        with log_path.open("w", encoding="utf-8") as fh:
            fh.write(f"# job {job.id}\n# key {job.key}\n# executor {job.executor}\n")
            try:
                wheel = self._execute(job, work, fh, state)
            except WheelfarmError as exc:
                message = str(exc)
                fh.write(f"! {state.step} failed: {exc}\n")
            except Exception as exc:  # a bug in one job must not take the others down
                message = f"internal error: {exc!r} (see the log)"
                fh.write("! internal error\n" + traceback.format_exc())
        status: Status = "ok" if wheel is not None else "failed"
        if status == "ok" or not self.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        self._emit(job, "done")
        return JobResult(
            job=job, status=status, seconds=time.monotonic() - started, log=log_path,
            wheel=wheel, step=None if wheel else state.step, message=message,
            tail="" if wheel else _tail(log_path),
        )

    def _execute(self, job: Job, work: Path, fh: IO[str], state: _State) -> Path:
        def enter(step: str) -> None:
            state.step = step
            fh.write(f"## {step}\n")
            fh.flush()
            self._emit(job, step)

        enter("source")
        src = self._fetch(job, work / "src", fh)
        executor = self.executors[job.executor]
        enter("toolchain")
        executor.prepare(job.target, self.config.cache_dir, fh)
        timeout = job.recipe.timeout or self.config.timeout
        ctx = JobContext(job.target, job.python, work, self.config.cache_dir, fh, timeout)
        with executor.open(ctx) as place:
            enter("build")
            built = build_wheel(place, job, src, work, self.config.cache_dir)
            repair.check_binary(built, src)
            enter("repair")
            repaired = repair.repair(place, built, job.target, work / "repaired")
            enter("test")
            for tag in job.test_pythons:
                test_wheel(place, tag, repaired, job.recipe.test, work)
        enter("output")
        return self._deliver(repaired, fh)

    def _fetch(self, job: Job, dest: Path, fh: IO[str]) -> Path:
        # Jobs of one recipe share a download; each still extracts its own copy
        # because builds write into their source tree.
        key = job.recipe.source.identity()
        with self._locks_guard:
            lock = self._fetch_locks.setdefault(key, threading.Lock())
        dest.mkdir(parents=True)
        with lock:
            return source.fetch(job.recipe.source, dest, cache_dir=self.config.cache_dir,
                                index_url=self.config.index_url, log=fh)

    def _deliver(self, wheel: Path, fh: IO[str]) -> Path:
        final = self.out_dir / wheel.name
        with self._out_lock:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if final.exists() and source.sha256_file(final) == source.sha256_file(wheel):
                fh.write(f"{final.name} already in {self.out_dir} with the same bytes\n")
                return final
            # The temporary name carries no .whl suffix: an index written
            # meanwhile must never list a half-copied wheel.
            fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=self.out_dir)
            os.close(fd)
            try:
                shutil.copyfile(wheel, tmp)
                os.replace(tmp, final)
            except BaseException:
                os.unlink(tmp)
                raise
        fh.write(f"wrote {final}\n")
        return final

    def _emit(self, job: Job, step: str) -> None:
        if self.on_step is not None:
            self.on_step(job, step)


class _State:
    step = "source"


def build_requires(src: Path) -> list[str]:
    """``build-system.requires``, or the PEP 517 fallback for a setup.py project."""
    pyproject = src / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BuildError(f"{pyproject.name}: invalid TOML: {exc}") from None
        system = data.get("build-system")
        if system is not None:
            return [str(r) for r in system.get("requires", [])]
    return ["setuptools>=40.8.0"]


def build_wheel(place: Place, job: Job, src: Path, work: Path, cache_dir: Path) -> Path:
    """Build one wheel with the PEP 517 frontend in a cached environment of our own.

    The environment is made here rather than by ``build``'s isolation so the
    recipe's extra requirements go in, and so the same set is installed once
    for every job that needs it (see :mod:`wheelfarm.buildenv`).
    """
    recipe = job.recipe
    static = ["build", *build_requires(src), *recipe.requires]
    env_dir = buildenv.ensure(place, job.python, static, cache_dir, work)
    out = place.run([str(env_dir / "bin" / "python"), "-c", _GET_REQUIRES, str(src)],
                    cwd=src, env=_build_env(place, recipe.env, env_dir)).stdout
    dynamic = _marked_json(out, "WHEELFARM-REQUIRES:")
    if dynamic:
        env_dir = buildenv.ensure(place, job.python, [*static, *dynamic], cache_dir, work)
    env = _build_env(place, recipe.env, env_dir)
    for command in recipe.before_build:
        place.run(["sh", "-c", command], cwd=src, env=env)
    settings = []
    if recipe.abi3:
        settings.append(f"-C--build-option=--py-limited-api={recipe.abi3}")
    if recipe.build_number is not None:
        settings.append(f"-C--build-option=--build-number={recipe.build_number}")
    dist = work / "dist"
    try:
        place.run([str(env_dir / "bin" / "python"), "-m", "build", "--wheel", "--no-isolation",
                   "--skip-dependency-check", *settings, "--outdir", str(dist), str(src)],
                  cwd=src, env=env)
    except CommandError as exc:
        raise BuildError(f"build failed: {_last(exc)}") from exc
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one wheel from the build, found {len(wheels)}")
    return wheels[0]


def _build_env(place: Place, extra: tuple[tuple[str, str], ...], env_dir: Path) -> dict[str, str]:
    return {
        **place.toolchain_env(),
        **dict(extra),
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(env_dir),
    }


def test_wheel(place: Place, tag: str, wheel: Path, spec: TestSpec, work: Path) -> None:
    """Install ``wheel`` into a fresh venv of ``tag`` and run the recipe's tests there.

    Tests run in an empty directory so the source tree cannot shadow the
    installed wheel. The wheel is installed by path, so it cannot come from
    anywhere else; its dependencies and ``test.requires`` come from the index.
    """
    venv = work / f"test-{tag}"
    place.run([place.python(tag), "-m", "venv", "--without-pip", str(venv)], cwd=work)
    vpy = str(venv / "bin" / "python")
    try:
        place.run([*place.pip(), "--python", vpy, "install", "--disable-pip-version-check",
                   str(wheel), *spec.requires], cwd=work)
    except CommandError as exc:
        raise TestFailure(f"installing {wheel.name} on {tag} failed: {_last(exc)}") from exc
    scratch = work / f"test-{tag}-cwd"
    scratch.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(venv),
    }
    checks = [[vpy, "-c", f"import {name}"] for name in spec.imports]
    checks += [["sh", "-c", command] for command in spec.commands]
    for argv in checks:
        try:
            place.run(argv, cwd=scratch, env=env)
        except CommandError as exc:
            shown = argv[-1]
            raise TestFailure(f"test on {tag} failed: {shown}: {_last(exc)}") from exc


def _last(exc: CommandError) -> str:
    lines = [line for line in exc.tail.strip().splitlines() if line.strip()]
    return lines[-1] if lines else str(exc)


def _marked_json(output: str, marker: str) -> list[str]:
    for line in reversed(output.splitlines()):
        if line.startswith(marker):
            value = json.loads(line[len(marker):])
            return [str(v) for v in value]
    raise BuildError("the build backend did not report its requirements")


def _tail(path: Path, lines: int = 25) -> str:
    """The end of the failing step's part of the log (from its ``## step`` marker)."""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    starts = [i for i, line in enumerate(text) if line.startswith("## ")]
    since = text[starts[-1]:] if starts else text
    return "\n".join(since[-lines:])
