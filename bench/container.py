"""Container benchmarks (issue: the container executor), on the local bullseye image.

1. container: the same six projects (C, C++, cffi, and three PyPI sdists:
   markupsafe (C), msgpack (Cython-generated C), ujson (C + C++)) built for
   cp39 in the local image, repaired and import-tested, by cibuildwheel
   (one invocation per project, as it builds one package at a time) and by
   `wheelfarm build --executor container --jobs 2` (cold: a fresh farm;
   warm: the same farm again, into a new output directory);
2. the per-job container overhead (create + start + copy in + copy out +
   remove), median of 15: the executor's two containers with the job's
   files and the cache bind-mounted, one such container, and one whose files
   are copied in and out through the API.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from .common import PROJECTS, WHEELFARM, clean, scratch, sh

IMAGE = "localhost/wheelfarm-bullseye:latest"
TARGET = "manylinux_2_31_x86_64"
LOCAL = {
    "fastadd": "import fastadd; assert fastadd.add(2, 3) == 5",
    "cppvec": "import cppvec; assert cppvec.join(['a', 'b'], ',') == 'a,b'",
    "cffidemo": "import cffidemo; assert cffidemo.fnv1a_32(b'') == 0x811C9DC5",
}
SDISTS = {  # name: (version, import test)
    "markupsafe": ("3.0.3", "import markupsafe._speedups"),
    "msgpack": ("1.1.2", "import msgpack._cmsgpack"),
    "ujson": ("5.11.0", "import ujson; assert ujson.dumps([1]) == '[1]'"),
}


def _engine() -> Any:
    from wheelfarm.build.executors.engine import connect

    return connect(None).client


def _projects(root: Path) -> dict[str, tuple[Path, str]]:
    """The six source trees, the sdists downloaded and unpacked once."""
    found = {name: (PROJECTS / name, check) for name, check in LOCAL.items()}
    sdists = root / "sdists"
    sdists.mkdir()
    for name, (version, check) in SDISTS.items():
        sh([*WHEELFARM[:1], "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--dest", str(sdists), f"{name}=={version}"])
        archive = next(sdists.glob(f"{name}-{version}.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(sdists, filter="data")
        found[name] = (sdists / f"{name}-{version}", check)
    return found


def _recipe(farm: Path, name: str, path: Path, check: str) -> Path:
    recipe = farm / f"{name}.toml"
    env = 'env = { CIBUILDWHEEL = "1" }\n' if name == "markupsafe" else ""
    recipe.write_text(
        f'[package]\nname = "{name}"\nversion = "0"\n[source]\npath = "{path}"\n'
        f'[build]\ntargets = ["{TARGET}"]\npythons = ["cp39"]\n{env}'
        f'[test]\ncommands = ["python -c \\"{check}\\""]\n'
    )
    return recipe


def _cibuildwheel(path: Path, check: str, out: Path, config: Path) -> float:
    # The image has no proxy CA and pip inside must reach PyPI: mount the host's
    # bundle and use the host's network, as cibuildwheel's container would need
    # on any machine behind such a proxy.
    ca = "/etc/ssl/certs/ca-certificates.crt"
    env = {
        **os.environ,
        "CIBW_CONTAINER_ENGINE": f"podman; create_args: --runtime=runc --network=host "
                                 f"-v {ca}:/host-ca.crt:ro",
        "CIBW_MANYLINUX_X86_64_IMAGE": IMAGE,
        "CIBW_BUILD": "cp39-manylinux_x86_64",
        # The local image has no `build` in /opt/python (cibuildwheel's default
        # frontend expects it there): pip's frontend needs nothing extra.
        "CIBW_BUILD_FRONTEND": "pip",
        "CIBW_ARCHS": "x86_64",
        "CIBW_ENVIRONMENT": "PIP_CERT=/host-ca.crt SSL_CERT_FILE=/host-ca.crt CIBUILDWHEEL=1",
        "CIBW_TEST_COMMAND": f'python -c "{check}"',
        "CIBW_BUILD_VERBOSITY": "0",
    }
    env.pop("DOCKER_HOST", None)  # cibuildwheel drives the podman CLI itself
    start = time.perf_counter()
    # Run from the project: cibuildwheel copies its working directory into the container.
    subprocess.run([str(Path(WHEELFARM[0]).with_name("cibuildwheel")), "--platform", "linux",
                    # An empty config file: the sdists' own [tool.cibuildwheel] tables
                    # hold their upstream CI's settings (markupsafe's even names an
                    # option this cibuildwheel rejects); both tools get the same settings.
                    "--config-file", str(config),
                    "--output-dir", str(out), "."], check=True, env=env, cwd=path,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def versus_cibuildwheel() -> dict[str, float]:
    root = scratch("container")
    try:
        projects = _projects(root)
        config = root / "cibuildwheel.toml"
        config.write_text("")
        cibw = 0.0
        per_project: dict[str, float] = {}
        for name, (path, check) in projects.items():
            copy = root / "cibw-src" / name
            shutil.copytree(path, copy)  # cibuildwheel may leave build files behind
            seconds = _cibuildwheel(copy, check, root / "cibw-out", config)
            per_project[name] = seconds
            cibw += seconds
        cibw_wheels = len(list((root / "cibw-out").glob("*.whl")))
        farm = root / "farm"
        farm.mkdir()
        recipes = [_recipe(farm, name, path, check) for name, (path, check) in projects.items()]
        argv = [*WHEELFARM, "build", *map(str, recipes), "--farm", str(farm),
                "--executor", "container", "--jobs", "2"]
        # A per-user cache of the bench's own, empty at first: the cold run downloads
        # the requirements and makes the environments, as cibuildwheel's runs do.
        env = {**os.environ, "WHEELFARM_CACHE_DIR": str(root / "user-cache")}
        cold = sh([*argv, "--out", str(farm / "out-cold")], cwd=farm, env=env)
        # --no-cache: rebuild every job (else the content cache serves them), with the
        # wheelhouse and build environments the cold run left.
        warm = sh([*argv, "--out", str(farm / "out-warm"), "--no-cache"], cwd=farm, env=env)
        ours = len(list((farm / "out-warm").glob("*.whl")))
        return {"projects": float(len(projects)), "cibuildwheel_s": cibw,
                "cibuildwheel_wheels": float(cibw_wheels), "wheelfarm_wheels": float(ours),
                "wheelfarm_cold_s": cold, "wheelfarm_warm_s": warm,
                "ratio_cold": cold / cibw, "ratio_warm": warm / cibw,
                **{f"cibuildwheel_{k}_s": v for k, v in per_project.items()}}
    finally:
        clean(root)


def _tar_of(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname=path.name)
    return buf.getvalue()


def overhead(rounds: int = 15) -> dict[str, float]:
    """Per-job container cost without the build: the executor's two containers
    (the farm's steps, cache writable; the build's, cache read-only), one
    container with the same mounts, and one whose files are copied through the API."""
    from wheelfarm.build.executors.container import remove
    from wheelfarm.build.executors.engine import LABEL, OWNER, owner_id

    client = _engine()
    image = client.images.get(IMAGE).id
    work = scratch("overhead")
    src, cache = work / "src", work / "cache"
    shutil.copytree(PROJECTS / "fastadd", src)
    cache.mkdir()
    payload = _tar_of(src)
    log = io.StringIO()
    labels = {LABEL: "1", OWNER: owner_id()}

    def started(cache_mode: str | None) -> Any:
        volumes = {} if cache_mode is None else {
            str(src): {"bind": str(src), "mode": "rw"},
            str(cache): {"bind": str(cache), "mode": cache_mode}}
        c = client.containers.create(image, ["sleep", "600"], labels=labels,
                                     network_mode="none", detach=True, volumes=volumes)
        c.start()
        return c

    times: dict[str, list[float]] = {"two": [], "one": [], "copy": []}
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            pair = [started("rw"), started("ro")]  # the files are there through the mounts
            for c in pair:
                remove(c, log)
            times["two"].append(time.perf_counter() - start)

            start = time.perf_counter()
            remove(started("rw"), log)
            times["one"].append(time.perf_counter() - start)

            start = time.perf_counter()
            c = started(None)
            c.put_archive("/tmp", payload)
            stream, _stat = c.get_archive("/tmp/src")
            for _chunk in stream:
                pass
            remove(c, log)
            times["copy"].append(time.perf_counter() - start)
        return {"two_median_s": statistics.median(times["two"]),
                "two_max_s": max(times["two"]),
                "mount_median_s": statistics.median(times["one"]),
                "copy_median_s": statistics.median(times["copy"]),
                "mount_max_s": max(times["one"]), "rounds": float(rounds)}
    finally:
        clean(work)


def container() -> dict[str, object]:
    return {"overhead": overhead(), "versus": versus_cibuildwheel()}


def render(results: dict[str, dict[str, object]]) -> list[str]:
    """The BENCHMARKS.md section of this suite."""
    if "container" not in results:
        return []
    r = results["container"]
    figures = r["figures"]
    assert isinstance(figures, dict)
    v, o = figures["versus"], figures["overhead"]
    lines = [
        f"## Container builds: wheelfarm vs cibuildwheel ({r['when']})",
        "",
        f"{v['projects']:.0f} projects (fastadd: C, cppvec: C++, cffidemo: cffi, and the",
        "sdists of markupsafe, msgpack and ujson), cp39, in the local bullseye image",
        "(`localhost/wheelfarm-bullseye:latest`) on podman with runc, each repaired",
        "to manylinux_2_31 and import-tested. cibuildwheel: one run per project",
        "(`CIBW_CONTAINER_ENGINE='podman; create_args: --runtime=runc …'`,",
        "`CIBW_MANYLINUX_X86_64_IMAGE`, `CIBW_BUILD=cp39-manylinux_x86_64`,",
        "`CIBW_BUILD_FRONTEND=pip`, the host's CA bundle and network for its pip).",
        "wheelfarm: `build --executor container --jobs 2`; cold = fresh farm and",
        "an empty per-user cache (requirements downloaded, environments made), warm =",
        "the same farm and cache again",
        "with `--no-cache` (every job rebuilt, wheelhouse and environments reused).",
        "Goal: ≤ 0.6x cibuildwheel's time on 2 cores.",
        "",
        "| cibuildwheel (s) | wheelfarm cold (s) | ratio | wheelfarm warm (s) | ratio |",
        "|---|---|---|---|---|",
        f"| {v['cibuildwheel_s']:.1f} | {v['wheelfarm_cold_s']:.1f} | {v['ratio_cold']:.2f} | "
        f"{v['wheelfarm_warm_s']:.1f} | {v['ratio_warm']:.2f} |",
        "",
        f"Wheels: cibuildwheel {v['cibuildwheel_wheels']:.0f}, "
        f"wheelfarm {v['wheelfarm_wheels']:.0f}.",
        "",
        "Per-job container overhead (create + start + files in + files out +",
        f"remove), median of {o['rounds']:.0f}; goal ≤ 0.5 s:",
        "",
        "| two containers, as the executor does: the farm's steps (cache rw) and the "
        "build's (cache ro) (s) | one container, bind mounts (s) | "
        "one container, copy in/out through the API (s) |",
        "|---|---|---|",
        f"| {_pair(o)} | "
        f"{o['mount_median_s']:.3f} (max {o['mount_max_s']:.3f}) | {o['copy_median_s']:.3f} |",
        "",
    ]
    return lines


def _pair(o: dict[str, float]) -> str:
    if "two_median_s" not in o:  # measured before the executor had two containers
        return "not measured"
    return f"{o['two_median_s']:.3f} (max {o['two_max_s']:.3f})"
