"""The one pipeline: source -> toolchain -> build -> repair/check -> test -> output.

Written once for every executor; an executor only supplies the place where
the commands run. One job's failure never touches another job or the output:
a wheel reaches the :class:`Output` (a wheelhouse) only after it passed every
step, and the output adds it atomically.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal, Protocol

from wheelfarm import proc
from wheelfarm.build import (
    causes,
    ccwrap,
    debuginfo,
    errorlines,
    parity,
    provenance,
    quality,
    repair,
    reproducible,
    source,
    testplaces,
)
from wheelfarm.build.archive import sha256_file
from wheelfarm.build.cache import ArtifactCache, Cached, Caches, OpenRemote
from wheelfarm.build.emulation import run_tests
from wheelfarm.build.executors import Executor, JobContext, Place
from wheelfarm.build.outcome import Artifact, Outcome, Status
from wheelfarm.build.outcome import JobResult as JobResult  # where the CLI has found it
from wheelfarm.build.parity import ParityReport
from wheelfarm.build.steps import BuildEnv, build_wheel, prepare_env
from wheelfarm.errors import (
    CommandError,
    CompileError,
    FailureKind,
    JobError,
    NotReproducible,
    WheelfarmError,
)
from wheelfarm.plan import lockfile as lock
from wheelfarm.plan.config import CONFIG_NAME, FarmConfig
from wheelfarm.plan.jobs import Job

STEPS = ("source", "toolchain", "build", "repair", "normalize", "test", "parity", "output")
# With --check-reproducible the first five run twice, then "reproduce" compares.
OnStep = Callable[[Job, str], None]
OnResult = Callable[["JobResult"], None]

class Output(Protocol):
    """Where finished wheels go: a wheelhouse (``wheelfarm.farm.wheelhouse``)."""

    root: Path

    def add(self, wheel: Path, statement: Path | None = None,
            debug: Sequence[debuginfo.DebugFile] = ()) -> Literal["new", "same", "replaced"]:
        """Add ``wheel`` with its provenance statement and debug files, atomically
        and debug files first; whether it is new, the same bytes, or replaced one."""
        ...


class Pipeline:
    def __init__(self, config: FarmConfig, executors: Mapping[str, Executor], output: Output,
                 *, on_step: OnStep | None = None, keep_work: bool = False,
                 normalize: bool = True, locked: bool = False,
                 check_reproducible: bool = False, use_cache: bool = True,
                 compare_upstream: bool = True, remote: OpenRemote | None = None,
                 on_result: OnResult | None = None, log_file: Path | None = None) -> None:
        """``remote`` opens the second cache (the published store) on the first miss;
        ``on_step`` is told each step a job enters, ``on_result`` each attempt's result;
        ``log_file``: append every job's log there (a farm job's process writes its
        attempt's log as it goes, for the dashboard) instead of a new directory's
        ``<job id>.log``."""
        self.config = config
        self.executors = executors
        self.output = output
        self.out_dir = output.root
        self.on_step = on_step
        self.on_result = on_result
        self.keep_work = keep_work
        self.normalize = normalize
        self.locked = locked  # strict: a missing or stale lock fails the job
        self.check_reproducible = check_reproducible
        self.compare_upstream = compare_upstream
        # A reproducibility check must build; a hit would prove nothing.
        self.use_cache = use_cache and not check_reproducible
        self.cache = ArtifactCache(config.state_dir)
        self.caches = Caches(self.cache, remote)
        self.log_file = log_file
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_dir = log_file.parent if log_file is not None else Path(
            tempfile.mkdtemp(prefix=f"{stamp}-", dir=self._mkdir("logs")))
        self._fetch_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _mkdir(self, name: str) -> Path:
        path = self.config.state_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run_job(self, job: Job) -> JobResult:
        result = self._run_job(job)
        if self.on_result is not None:
            self.on_result(result)
        return result

    def _run_job(self, job: Job) -> JobResult:
        started = time.monotonic()
        wall = time.time()
        log_path = self.log_file or self.log_dir / f"{job.id}.log"
        hit, note = self.caches.hit(job.key) if self.use_cache else (None, "")
        if hit is not None:
            reused = self._reuse(job, hit, log_path, started, note)
            return replace(reused, outcome=replace(reused.outcome, started_at=wall))
        work = Path(tempfile.mkdtemp(prefix=f"{job.id}-", dir=self._mkdir("work")))
        state = _State()
        wheel: Path | None = None
        message = ""
        kind: FailureKind | None = None  # None: the failing step's
        # Appended: a job the queue retries keeps its earlier attempts' logs.
        with log_path.open("a", encoding="utf-8") as fh:
            fh.write(f"# job {job.id}\n# key {job.key}\n# executor {', then '.join(job.chain)}\n")
            if note:
                fh.write(note + "\n")
            try:
                wheel = self._chain(job, work, fh, state)
            except WheelfarmError as exc:
                message = str(exc)
                kind = exc.kind if isinstance(exc, JobError) else None
                fh.write(f"! {state.step} failed: {exc}\n")
            except Exception as exc:  # a bug in one job must not take the others down
                message = f"internal error: {exc!r} (see the log)"
                fh.write("! internal error\n" + traceback.format_exc())
        status: Status = "ok" if wheel is not None else "failed"
        if wheel is not None and self.normalize:
            # Only canonical wheels with provenance are worth reusing.
            self.cache.store(job.key, wheel, provenance.path_for(wheel),
                             debuginfo.read_listing(wheel))
        if status == "ok" or not self.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        self._emit(job, "done")
        took = time.monotonic() - started
        tail = ""
        errors: tuple[str, ...] = ()
        if wheel is None:
            failed_kind = FailureKind(state.step) if kind is None else kind
            tail, errors, section = _failure(log_path, f"! {state.step} failed: ")
            outcome = Outcome.failed(failed_kind, message, took, str(log_path),
                                     causes.classify(failed_kind, message, section))
        else:
            outcome = Outcome(True, took, log=str(log_path), artifact=Artifact(
                wheel.name, sha256_file(wheel), str(wheel)))
        return JobResult(job, replace(outcome, started_at=wall), tail=tail, errors=errors,
                         parity=state.parity,
                         test_status=state.test_status if wheel else "",
                         test_note=state.test_note if wheel else "", toolchain=state.toolchain)

    def _reuse(self, job: Job, hit: Cached, log_path: Path, started: float,
               where: str) -> JobResult:
        with log_path.open("a", encoding="utf-8") as fh:
            fh.write(f"# job {job.id}\n# key {job.key}\n{where}: {hit.filename} "
                     f"sha256 {hit.sha256}\n")
            self.output.add(hit.wheel, hit.provenance, hit.debug)
            final = self.out_dir / hit.filename
        self._emit(job, "done")
        # A cached wheel keeps the test status it was built with (its provenance's).
        status, note = testplaces.recorded_for(final) or ("", "")
        return JobResult(job, Outcome(True, time.monotonic() - started, log=str(log_path),
                                      artifact=Artifact(hit.filename, hit.sha256, str(final)),
                                      cached=True), test_status=status, test_note=note,
                         toolchain=provenance.executor_of(final))

    def _chain(self, job: Job, work: Path, fh: IO[str], state: _State) -> Path:
        """Build with each executor of the job's chain in turn until one compiles it.

        Only a failed compile (:class:`CompileError`: the build command exited
        non-zero) moves on to the next toolchain; any other failure, and every
        failure of the last toolchain, is the job's. Each attempt has its own work
        directory, and its part of the log stays in the job's log.
        """
        chain = job.chain
        for n, name in enumerate(chain, 1):
            state.toolchain = name
            if len(chain) == 1:
                return self._execute(job, name, work, fh, state)
            fh.write(f"# toolchain {n} of {len(chain)}: {name}\n")
            try:
                return self._execute(job, name, work / f"{n}-{name}", fh, state)
            except CompileError as exc:
                if n == len(chain):
                    raise
                fh.write(f"! {state.step} failed with toolchain {name}: {exc}\n"
                         f"# falling back to toolchain {chain[n]}: {name} could not compile "
                         f"this project\n")
                fh.flush()
        raise AssertionError("a chain has at least one executor")

    def _execute(self, job: Job, name: str, work: Path, fh: IO[str], state: _State) -> Path:
        def enter(step: str) -> None:
            state.step = step
            fh.write(f"## {step}\n")
            fh.flush()
            self._emit(job, step)

        started = datetime.now(UTC)
        work.mkdir(exist_ok=True)
        executor = self.executors[name]
        timeout = job.recipe.timeout or self.config.timeout
        ctx = JobContext(job.target, job.python, work, self.config.cache_dir, fh, timeout,
                         network=job.recipe.network, profile=job.profile,
                         private=self._private(), tools_dir=self.config.tools_dir)
        with executor.open(ctx) as place:
            built = self._produce(place, job, name, work, fh, enter)
            if self.check_reproducible:
                self._build_again(job, name, built, work / "again", fh, enter)
            enter("test")
            tests = run_tests(place, job.target, job.test_pythons, built.wheel,
                              job.recipe.test, work, fh, source=built.src,
                              index_url=self.config.index_url)
            state.test_status, state.test_note = tests.status, tests.note
            # once per job, never per reproducibility rebuild; upstream's wheel must run too
            if self.compare_upstream and testplaces.is_host_target(job.target):
                enter("parity")
                state.parity = parity.compare(place, job, built.wheel, work,
                                              self.config.index_url, self.config.cache_dir, fh)
                parity.judge(state.parity)
            network = place.network
        enter("output")
        recipe = job.recipe
        facts = provenance.BuildFacts(
            recipe_name=recipe.name, recipe_path=str(recipe.path.resolve()),
            recipe_digest=recipe.digest(), source=provenance.source_facts(recipe.source),
            target=job.target.name, python=job.python,
            test_pythons=job.test_pythons, executor=name, job_key=job.key,
            source_date_epoch=built.epoch, network=network,
            toolchain={**provenance.host_toolchain(),
                       "executor": executor.toolchain_id(job.target)},
            build_requirements=built.env.requirements, locked=built.env.locked,
            started=started, finished=datetime.now(UTC), profile=job.profile,
            debug_files=built.debug, test_status=state.test_status, test_note=state.test_note,
            toolchains=job.chain if job.fallbacks else (),
        )
        wheel = built.wheel
        sidecar = None
        if self.normalize:
            sidecar = provenance.write(wheel, facts, work / (wheel.name + provenance.SUFFIX))
        return self._deliver(wheel, sidecar, fh, built.debug)

    def _private(self) -> tuple[Path, ...]:
        """What a sandboxed build must not see: the farm's config and state."""
        return (self.config.root / CONFIG_NAME, self.config.state_dir)

    def _produce(self, place: Place, job: Job, name: str, work: Path, fh: IO[str],
                 enter: Callable[[str], None]) -> _Built:
        """source -> toolchain -> build -> repair/check -> normalize, in ``work``."""
        recipe = job.recipe
        cache_dir = self.config.cache_dir
        enter("source")
        src = self._fetch(job, work / "src", fh)
        git_time = _git_time(src, fh) if recipe.source.kind == "git" else None
        epoch = recipe.source_date_epoch or reproducible.source_date_epoch(
            recipe.source.kind, src, git_time)
        enter("toolchain")
        self.executors[name].prepare(job.target, cache_dir, fh)
        enter("build")
        extra = reproducible.build_environment(
            epoch, reproducible.path_maps(work, cache_dir), dict(recipe.env),
            place.toolchain_env()) | ccwrap.profile_env(job.profile)
        fh.write(f"SOURCE_DATE_EPOCH={epoch}\n")
        recipe_lock = lock.load(recipe)
        benv = prepare_env(
            place, job, src, work, cache_dir, extra,
            recipe_lock.pythons.get(job.python) if recipe_lock else None,
            recipe_lock.index_url if recipe_lock else self.config.index_url,
            self.locked, fh)
        built = build_wheel(place, job, src, work, benv.path, extra)
        repair.check_binary(built, src)
        enter("repair")
        repaired = repair.repair(place, built, job.target, work / "repaired", log=fh)
        quality.check_wheel(repaired, job.profile, fh)
        debug = debuginfo.split_wheel(repaired, recipe.debug_symbols, work / "debug", log=fh)
        if self.normalize:
            enter("normalize")
            reproducible.normalize_wheel(repaired, epoch)
        return _Built(repaired, benv, epoch, time.monotonic(), src, debug)

    def _build_again(self, job: Job, name: str, first: _Built, work: Path, fh: IO[str],
                     enter: Callable[[str], None]) -> None:
        """Build once more in another directory, later, and demand the same bytes."""
        # Zip timestamps have a two-second resolution: a clock leak must show.
        time.sleep(max(0.0, first.finished + 2.1 - time.monotonic()))
        work.mkdir()
        executor = self.executors[name]
        ctx = JobContext(job.target, job.python, work, self.config.cache_dir, fh,
                         job.recipe.timeout or self.config.timeout, network=job.recipe.network,
                         profile=job.profile, private=self._private(),
                         tools_dir=self.config.tools_dir)
        with executor.open(ctx) as place:
            again = self._produce(place, job, name, work, fh, enter)
        enter("reproduce")
        differ = debuginfo.differing_files(first.debug, again.debug)
        if differ:
            raise NotReproducible(f"two builds gave different debug files for build-id(s) "
                                  f"{', '.join(differ[:8])}")
        if sha256_file(again.wheel) == sha256_file(first.wheel):
            fh.write(f"reproducible: both builds gave {sha256_file(first.wheel)}\n")
            return
        members = reproducible.differing_members(first.wheel, again.wheel)
        _diffoscope(first.wheel, again.wheel, fh)
        shown = ", ".join(members[:8]) + (f" and {len(members) - 8} more" if len(members) > 8
                                           else "")
        raise NotReproducible(f"two builds differ in {len(members)} member(s): {shown}")

    def _fetch(self, job: Job, dest: Path, fh: IO[str]) -> Path:
        # Jobs of one recipe share a download; each still extracts its own copy
        # because builds write into their source tree.
        spec = job.recipe.source
        key = f"{spec.kind}:{spec.location}:{spec.name}=={spec.version}"
        with self._locks_guard:
            lock = self._fetch_locks.setdefault(key, threading.Lock())
        dest.mkdir(parents=True)
        with lock:
            return source.fetch(job.recipe.source, dest, cache_dir=self.config.cache_dir,
                                index_url=self.config.index_url, log=fh)

    def _deliver(self, wheel: Path, sidecar: Path | None, fh: IO[str],
                 debug: tuple[debuginfo.DebugFile, ...] = ()) -> Path:
        """Add the wheel, its provenance and debug files to the output."""
        final = self.out_dir / wheel.name
        added = self.output.add(wheel, sidecar, debug)
        if added == "same":
            fh.write(f"{final.name} already in {self.out_dir} with the same bytes\n")
        elif added == "replaced":
            fh.write(f"replacing {final.name}: this build gave different bytes\n")
        fh.write(f"wrote {final}\n")
        return final

    def _emit(self, job: Job, step: str) -> None:
        if self.on_step is not None:
            self.on_step(job, step)


class _State:
    step = "source"
    toolchain = ""  # the executor of the attempt under way (the last one tried)
    parity: ParityReport | None = None
    test_status = ""
    test_note = ""


@dataclass(frozen=True)
class _Built:
    wheel: Path
    env: BuildEnv
    epoch: int
    finished: float  # time.monotonic() when the wheel was ready
    src: Path  # the extracted source tree, for test.commands' {source}
    debug: tuple[debuginfo.DebugFile, ...] = ()  # split off the wheel's modules


def _diffoscope(a: Path, b: Path, fh: IO[str]) -> None:
    if shutil.which("diffoscope") is None:
        fh.write("(install diffoscope for a full report of the differences)\n")
        return
    proc.run(["diffoscope", "--text", "-", str(a), str(b)], log=fh, check=False, timeout=600)


def _git_time(src: Path, fh: IO[str]) -> int | None:
    try:
        out = proc.run(["git", "-C", str(src), "log", "-1", "--format=%ct"], log=fh).stdout
    except CommandError:
        return None
    digits = out.strip().splitlines()[-1] if out.strip() else ""
    return int(digits) if digits.isdigit() else None


def _failure(path: Path, last: str,
             lines: int = 25) -> tuple[str, tuple[str, ...], str]:
    """The end of the failing step's part of the log (from its ``## step`` marker),
    less build's advice and the closing ``last`` line (the report shows the
    message); the first compiler/linker errors of that part; and the whole part,
    which the failure's cause is read from (one read of the log for all three)."""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    starts = [i for i, line in enumerate(text) if line.startswith("## ")]
    since = text[starts[-1]:] if starts else text
    section = "\n".join(since)
    errors = tuple(errorlines.first_errors(section))
    shown = errorlines.without_noise(since)
    if shown and shown[-1].startswith(last):
        shown.pop()
    return "\n".join(shown[-lines:]), errors, section
