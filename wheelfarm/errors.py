"""The one error tree. Each error knows its exit code; only the CLI renders it.

Exit codes: 1 = a build or verification failed, 2 = bad input or configuration,
128 + N = signal N stopped the run. ``exit_code`` on the class (or, for
:class:`Interrupted`, the instance) is the only place a code is decided; the
CLI's one handler (:func:`wheelfarm.cli.main`) returns it.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator


class WheelfarmError(Exception):
    """Base of every expected failure. ``str(err)`` is the one line a user sees."""

    exit_code = 1


class ConfigError(WheelfarmError):
    """Bad input found before anything runs: a recipe, a flag, the farm config."""

    exit_code = 2


class RecipeError(ConfigError):
    """A malformed recipe; the message names the file and the key."""

    def __init__(self, path: object, key: str | None, message: str) -> None:
        self.path = str(path)
        self.key = key
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        super().__init__(where + message)


class ExtraMissing(ConfigError):
    """A feature whose packages come with an optional extra (``wheelfarm[NAME]``)
    that is not installed."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        self.extra = extra
        super().__init__(f"{feature} needs the '{extra}' extra: "
                         f"pip install 'wheelfarm[{extra}]' ({module} is not installed)")


@contextlib.contextmanager
def needs_extra(extra: str, feature: str) -> Iterator[None]:
    """The imports of an optional extra's packages go in this block, so that a
    missing one is the one line of :class:`ExtraMissing` and not a traceback."""
    try:
        yield
    except ModuleNotFoundError as exc:
        name = exc.name or "a module"
        if name.partition(".")[0] == "wheelfarm":  # our own bug, not a missing extra
            raise
        raise ExtraMissing(feature, extra, name) from exc


class MergeConflict(WheelfarmError):
    """Two inputs of a merge hold different files under one name."""


class WheelChanged(WheelfarmError):
    """A wheel's bytes are not the ones recorded for it; it is not added to the wheelhouse."""


class JobError(WheelfarmError):
    """A job failed while running (fetch, build, repair, check, test).

    ``kind`` is None: the step that raised the error decides the failure's
    kind (see :class:`FailureKind`); a subclass may name one that holds wherever
    it is raised.
    """

    kind: FailureKind | None = None


class SourceError(JobError):
    """The source could not be fetched, checked or unpacked."""


class BuildError(JobError):
    """The build backend gave no wheel."""


class CompileError(BuildError):
    """The build command itself failed (the compiler, the linker or the backend exited
    non-zero): the one failure after which a toolchain chain tries its next toolchain."""


class PolicyError(JobError):
    """The wheel does not satisfy its target; ``violations`` names each symbol."""

    def __init__(self, message: str, violations: list[str] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []


class RepairError(JobError):
    """auditwheel or delocate could not repair the wheel."""


class QualityError(JobError):
    """A module of the wheel is not what its build profile promises (a sanitizer,
    missing optimization); the message names each module and why."""


class NotReproducible(JobError):
    """Two builds of the same inputs gave different wheels."""


class ParityError(JobError):
    """The wheel falls short of the upstream project's own wheel: an extension
    module upstream ships is missing, or the recipe's bench is too slow."""


class TestFailure(JobError):
    """The wheel's tests failed in a fresh environment."""

    __test__ = False  # not a pytest test class


class CommandError(JobError):
    """A subprocess exited non-zero or timed out; carries the tail of its output."""

    def __init__(self, cmd: list[str], returncode: int | None, tail: str) -> None:
        self.cmd = cmd
        self.returncode = returncode
        self.tail = tail
        what = "timed out" if returncode is None else f"exited {returncode}"
        head = f"{cmd[0]} {what}"
        last = tail.strip().splitlines()[-1] if tail.strip() else ""
        super().__init__(f"{head}: {last}" if last else head)


# -- errors of the wings: publishing, stores, the farm, container engines, wheels --------


class StoreError(WheelfarmError):
    """The store could not be read or written (I/O, permissions, the S3 API)."""


class DamagedStore(StoreError):
    """An object a signed manifest lists is missing or does not match its hash."""


class SigningError(WheelfarmError):
    """gpg could not sign, or a signature did not verify."""


class PublishError(WheelfarmError):
    """A publish could not complete: every attempt lost the race for the next generation."""


class ImmutableError(ConfigError):
    """A file name that is already published, with other bytes."""


class WheelRefused(ConfigError):
    """A file is not a sound wheel, or not the job's own: bad input (exit 2 for
    ``publish``, a 4xx answer for the controller)."""


class EngineUnavailable(WheelfarmError):
    """No container engine answered; ``str()`` names every place that was tried and why."""


class LeaseLost(WheelfarmError):
    """The lease was reclaimed, cancelled or has expired: the report is refused."""


class TooLarge(WheelfarmError):
    """A request body or upload over its limit (answered with 413)."""


# -- outcomes a command has already shown in full ------------------------------------------


class Reported(WheelfarmError):
    """A failure the command has already shown line by line (its jobs' table, each
    failed check): the CLI's handler shows only the message, if there is one, as it
    is (no ``error:``), and exits with the code."""


class JobsFailed(Reported):
    """At least one job failed (or a rebuild differs from the recorded wheel)."""


class ChecksFailed(Reported):
    """A verification found failures; each was named."""


class Interrupted(Reported):
    """A signal stopped the run; the exit code is the shell's for that signal."""

    def __init__(self, signum: int) -> None:
        import signal  # only an interrupted run needs the names

        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted ({signal.Signals(signum).name})")


# -- why an attempt failed ----------------------------------------------------------------


class FailureKind(enum.StrEnum):
    """Why an attempt failed, as the queue records it (its value is what the state
    database and the event log hold); :attr:`transient` decides a retry.

    A failure of the build itself (build, repair, test ...) is final at once:
    the content key pins every input, so a second try would fail the same
    way. The others say nothing about the job (a download, the worker, a
    lease): trying again may succeed.
    """

    # The pipeline's steps: a failure's kind is the step it happened in.
    SOURCE = "source"
    TOOLCHAIN = "toolchain"
    BUILD = "build"
    REPAIR = "repair"
    NORMALIZE = "normalize"
    TEST = "test"
    PARITY = "parity"
    OUTPUT = "output"
    REPRODUCE = "reproduce"
    # Around the pipeline.
    TIMEOUT = "timeout"  # the job's time ran out; it was killed
    WORKER = "worker-error"  # the worker could not run or report the job
    LEASE_EXPIRED = "lease-expired"  # the queue took the job back from a silent worker
    INTERNAL = "internal"  # a bug
    # What a local build reports for jobs no attempt of its own ended.
    NEEDS = "needs"  # a needed job failed, so this one never ran
    LOST = "lease"  # the queue failed the job after its lease was lost
    INTERRUPTED = "interrupted"  # the build was stopped first

    @property
    def transient(self) -> bool:
        return self in _TRANSIENT

    @classmethod
    def parse(cls, value: str) -> FailureKind | None:
        """The kind named ``value``; None for a name this version does not know
        (a newer worker's), which the queue treats as final."""
        try:
            return cls(value)
        except ValueError:
            return None


class FailureCause(enum.StrEnum):
    """What broke, for people: the taxonomy a failure is grouped by on the
    dashboard and in notifications. :class:`FailureKind` says which step failed
    (and whether to retry); this says why, read from the step and its log
    (see :mod:`wheelfarm.build.causes`)."""

    COMPILER = "compiler-error"  # the code does not compile or link with this toolchain
    MISSING_DEPENDENCY = "missing-dependency"  # a header, library or pkg-config package
    TOO_NEW_SYMBOL = "too-new-symbol"  # the wheel needs a newer libc than its target allows
    TEST = "test-failure"  # the built wheel's tests (or its bench against upstream) failed
    TIMEOUT = "timeout"
    NETWORK = "network"  # a download failed: the source, a build requirement
    INFRASTRUCTURE = "infrastructure"  # the worker, the toolchain, the store, a bug of ours
    OTHER = "other"

    @classmethod
    def parse(cls, value: str) -> FailureCause | None:
        try:
            return cls(value)
        except ValueError:
            return None


_TRANSIENT = frozenset({FailureKind.SOURCE, FailureKind.TOOLCHAIN, FailureKind.OUTPUT,
                        FailureKind.TIMEOUT, FailureKind.WORKER, FailureKind.LEASE_EXPIRED,
                        FailureKind.INTERNAL, FailureKind.LOST, FailureKind.INTERRUPTED})
