"""Git sources: a shared bare mirror per repository, a verified checkout per job."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import IO

from wheelfarm import proc
from wheelfarm.errors import CommandError, SourceError
from wheelfarm.fsutil import file_lock
from wheelfarm.plan.sourcespec import location_problem

GIT_TIMEOUT = 1800.0
# Transports a recipe may name; git refuses every other one too (ext::, fd::, helpers).
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"


def checkout(location: str, rev: str, dest: Path, cache_dir: Path, log: IO[str],
             name: str) -> Path:
    """Check out commit ``rev`` of the repository at ``location`` into ``dest/<name>``.

    A bare mirror per repository under ``cache_dir/git`` is fetched into once
    and shared by every job; the checkout is verified to be exactly ``rev``.
    """
    key = hashlib.sha256(location.encode()).hexdigest()[:24]
    mirror = cache_dir / "git" / f"{key}.git"
    mirror.parent.mkdir(parents=True, exist_ok=True)
    problem = location_problem(location)
    if problem is not None:
        raise SourceError(f"git source {location!r}: {problem}")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS}
    work = dest / (name.removesuffix(".git") or "repo")

    def git(*args: str | os.PathLike[str], check: bool = True) -> str:
        return proc.run(["git", *args], log=log, env=env, timeout=GIT_TIMEOUT,
                        check=check).stdout

    def has_rev() -> bool:
        return proc.run(["git", "-C", mirror, "cat-file", "-e", f"{rev}^{{commit}}"],
                        env=env, check=False).returncode == 0

    try:
        # The bare mirror is shared by every job of this cache; one writer at a time.
        with file_lock(mirror.with_suffix(".lock")):
            if not (mirror / "HEAD").is_file():
                git("init", "--bare", "--quiet", "--", mirror)
            if has_rev():
                log.write("git: commit in cache\n")
            else:
                # `--`: the location is never read as an option, whatever it holds.
                git("-C", mirror, "-c", "gc.auto=0", "fetch", "--quiet", "--force", "--",
                    location, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
                if not has_rev():
                    # Not on any branch or tag: ask for the commit itself (servers may refuse).
                    git("-C", mirror, "fetch", "--quiet", "--", location,
                        f"{rev}:refs/wheelfarm/{rev}", check=False)
                if not has_rev():
                    raise SourceError(f"git commit {rev} not found in {location}")
            git("clone", "--quiet", "--no-checkout", "--", mirror, work)
        git("-C", work, "checkout", "--quiet", "--detach", rev, "--")
        head = git("-C", work, "rev-parse", "--verify", "HEAD^{commit}").strip()
    except CommandError as exc:
        raise SourceError(f"git fetch of {location} failed: {_git_reason(exc)}") from exc
    if head != rev:
        raise SourceError(f"git checkout of {location}: HEAD is {head}, expected {rev}")
    log.write(f"git HEAD ok {rev}\n")
    return work


def _git_reason(exc: CommandError) -> str:
    # git ends with advice ("...and the repository exists."); the cause is its first fatal line.
    for line in exc.tail.splitlines():
        if line.startswith(("fatal: ", "error: ")):
            return line.split(": ", 1)[1].strip()
    return str(exc)
