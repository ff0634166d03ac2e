"""The one error tree. Each error knows its exit code; only the CLI renders it.

Exit codes: 1 = a build or verification failed, 2 = bad input or configuration,
128 + N = signal N stopped the run. ``exit_code`` on the class (or, for
:class:`Interrupted`, the instance) is the only place a code is decided; the
CLI's one handler (:func:`wheelfarm.cli.main`) returns it.
"""

from __future__ import annotations


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


class JobError(WheelfarmError):
    """A job failed while running (fetch, build, repair, check, test)."""

    step = "job"


class SourceError(JobError):
    step = "source"


class BuildError(JobError):
    step = "build"


class PolicyError(JobError):
    """The wheel does not satisfy its target; ``violations`` names each symbol."""

    step = "check"

    def __init__(self, message: str, violations: list[str] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []


class RepairError(JobError):
    step = "repair"


class QualityError(JobError):
    """A module of the wheel is not what its build profile promises (a sanitizer,
    missing optimization); the message names each module and why."""

    step = "check"


class NotReproducible(JobError):
    """Two builds of the same inputs gave different wheels."""

    step = "reproduce"


class ParityError(JobError):
    """The wheel falls short of the upstream project's own wheel: an extension
    module upstream ships is missing, or the recipe's bench is too slow."""

    step = "parity"


class TestFailure(JobError):
    step = "test"
    __test__ = False  # not a pytest test class


class CommandError(JobError):
    """A subprocess exited non-zero or timed out; carries the tail of its output."""

    step = "command"

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
