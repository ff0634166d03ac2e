"""The container executor's pure parts: config, engine search, reaping rules,
offline downloads, image discovery and the write check. No engine needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.wheels import make_wheel
from wheelfarm.build.executors import engine, offline
from wheelfarm.build.executors.container import ContainerExecutor
from wheelfarm.build.executors.container_place import ALLOWED_WRITES, check_writes, parse_discovery
from wheelfarm.errors import JobError, RecipeError
from wheelfarm.plan import config as farm_config
from wheelfarm.plan.targets import parse_target

# -- farm config ------------------------------------------------------------------------------


def _load(tmp_path: Path, text: str) -> farm_config.FarmConfig:
    (tmp_path / "wheelfarm.toml").write_text(text)
    return farm_config.load(tmp_path)


def test_default_maps_2_31_to_the_local_image_and_the_container_executor(tmp_path: Path) -> None:
    config = farm_config.load(tmp_path)
    target = parse_target("manylinux_2_31_x86_64")
    assert config.container.image_for(target) == "localhost/wheelfarm-bullseye:latest"
    assert config.executor_for(target) == "container"
    # Without an image, 2_17 keeps its non-container executor.
    assert config.executor_for(parse_target("manylinux2014_x86_64")) != "container"


def test_images_limits_and_engine_are_read(tmp_path: Path) -> None:
    config = _load(tmp_path, (
        'engine = "unix:///tmp/x.sock"\n'
        '[images]\n"manylinux2014_x86_64" = "quay.io/pypa/manylinux2014_x86_64@sha256:ab"\n'
        '[container-limits]\nmemory = "512m"\ncpus = 1.5\ntimeout = 600\n'
        '[image-pythons]\ncp312 = "/usr/bin/python3.12"\n'
    ))
    c = config.container
    assert c.engine == "unix:///tmp/x.sock"
    assert c.image_for(parse_target("manylinux_2_17_x86_64")).startswith("quay.io/pypa/")
    assert c.image_for(parse_target("manylinux_2_31_x86_64")) == farm_config.LOCAL_IMAGE
    assert (c.memory, c.cpus, c.timeout) == (512 << 20, 1.5, 600.0)
    assert c.pythons == (("cp312", "/usr/bin/python3.12"),)
    assert config.executor_for(parse_target("manylinux2014_x86_64")) == "container"


def test_an_explicit_executor_beats_the_image_mapping(tmp_path: Path) -> None:
    config = _load(tmp_path, '[executors]\n"manylinux_2_31_x86_64" = "zig"\n')
    assert config.executor_for(parse_target("manylinux_2_31_x86_64")) == "zig"


@pytest.mark.parametrize(("text", "key"), [
    ('[container-limits]\nmemory = "lots"\n', "container-limits.memory"),
    ('[container-limits]\ncpus = 0\n', "container-limits.cpus"),
    ('[container-limits]\nmemroy = "1g"\n', "container-limits.memroy"),
    ('[images]\n"manylinux_9_x86_64" = "x"\n', "images.manylinux_9_x86_64"),
    ('[image-pythons]\npython3 = "/usr/bin/python3"\n', "image-pythons.python3"),
])
def test_bad_container_config_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(RecipeError) as info:
        _load(tmp_path, text)
    assert f": {key}: " in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(("text", "size"), [
    ("512m", 512 << 20), ("4g", 4 << 30), ("4GiB", 4 << 30), ("100k", 100 << 10),
    (1048576, 1048576), ("123", 123),
])
def test_parse_size(text: str | int, size: int) -> None:
    assert farm_config.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "g", "-1m", "1.5g", "0", 0])
def test_parse_size_rejects(text: str | int) -> None:
    with pytest.raises(ValueError):
        farm_config.parse_size(text)


# -- engine search and reaping ----------------------------------------------------------------


def test_an_explicit_engine_is_the_only_one_tried() -> None:
    found = engine.candidates("unix:///tmp/a.sock", {"DOCKER_HOST": "unix:///tmp/b.sock"})
    assert [c.url for c in found] == ["unix:///tmp/a.sock"]
    found = engine.candidates(None, {"DOCKER_HOST": "tcp://127.0.0.1:2375"})
    assert [c.source for c in found] == ["DOCKER_HOST"]


def test_without_settings_docker_then_podman_sockets_are_searched() -> None:
    found = engine.candidates(None, {"XDG_RUNTIME_DIR": "/run/user/1000/"})
    assert [c.url for c in found] == [
        "unix:///var/run/docker.sock", "unix:///run/podman/podman.sock",
        "unix:///run/user/1000/podman/podman.sock"]


def test_connect_names_every_socket_it_tried(tmp_path: Path) -> None:
    missing = f"unix://{tmp_path}/none.sock"
    with pytest.raises(engine.EngineUnavailable) as info:
        engine.connect(missing, {})
    assert f"engine in wheelfarm.toml {missing} (no such socket)" in str(info.value)
    assert "podman system service" in str(info.value)


def test_api_version_is_the_older_of_engine_and_sdk() -> None:
    assert engine._api_version("1.41") == "1.41"
    assert engine._api_version("9.99") == engine._SDK_API
    assert engine._api_version(None) == engine._SDK_API


def test_a_container_is_stale_when_its_owner_process_is_gone() -> None:
    alive = {100: "555"}.get
    assert not engine.is_stale("farm:100:555", host="farm", start_time=alive)
    assert engine.is_stale("farm:101:555", host="farm", start_time=alive)
    # The pid was reused by another process: another start time.
    assert engine.is_stale("farm:100:999", host="farm", start_time=alive)
    # Another host's containers, and labels we did not write, are left alone.
    assert not engine.is_stale("other:101:555", host="farm", start_time=alive)
    assert not engine.is_stale("garbage", host="farm", start_time=alive)


def test_this_process_is_its_own_live_owner() -> None:
    assert not engine.is_stale(engine.owner_id())


# -- offline downloads ------------------------------------------------------------------------


def test_platform_tags_cover_every_older_manylinux_and_the_aliases() -> None:
    tags = offline.platform_tags("x86_64", (2, 31))
    assert tags[0] == "manylinux_2_31_x86_64"
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64",
            "manylinux_2_17_x86_64", "manylinux_2_5_x86_64"} <= set(tags)
    assert "manylinux_2_32_x86_64" not in tags
    assert "manylinux1_aarch64" not in offline.platform_tags("aarch64", (2, 28))


def test_download_argv_asks_for_the_containers_python_and_platform(tmp_path: Path) -> None:
    interp = offline.Interpreter((3, 9), "x86_64", (2, 31))
    argv = offline.download_argv(tmp_path, interp, ["setuptools>=61", "cffi"])
    joined = " ".join(argv)
    assert "download" in argv and "--only-binary :all:" in joined
    assert "--python-version 3.9" in joined and "--abi cp39" in joined
    assert "--platform manylinux_2_31_x86_64" in joined
    assert argv[-2:] == ["setuptools>=61", "cffi"]
    pinned = offline.download_argv(tmp_path, interp, [], "https://idx/simple/", tmp_path / "r")
    assert pinned[-4:] == ["--require-hashes", "--no-deps", "-r", str(tmp_path / "r")]
    assert "--index-url" in pinned


def test_download_key_depends_on_the_set_not_its_order() -> None:
    a = offline.Interpreter((3, 9), "x86_64", (2, 31))
    b = offline.Interpreter((3, 12), "x86_64", (2, 31))
    assert offline.download_key(["x", "y"], a, None) == offline.download_key(["y", "x"], a, None)
    assert offline.download_key(["x"], a, None) != offline.download_key(["x"], b, None)
    assert offline.download_key(["x"], a, None) != offline.download_key(["x"], a, "https://i/")


def test_a_wheels_dependencies_are_read_from_its_metadata(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0", "cp39-cp39-linux_x86_64", metadata=(
        "Requires-Dist: cffi>=1.15\nRequires-Dist: tomli; python_version < '3.11'\n"))
    assert offline.requires_dist(wheel) == ["cffi>=1.15", "tomli; python_version < '3.11'"]
    local, named = offline.split_local([str(wheel), "pytest"])
    assert local == [wheel] and named == ["pytest"]


# -- image discovery and the write check ------------------------------------------------------


def test_discovery_reads_pythons_glibc_and_rust() -> None:
    output = (
        "python /opt/python/cp312-cp312/bin/python\n"
        "python /opt/python/cp39-cp39/bin/python\n"
        "python /opt/python/cp38-cp38/bin/python\n"
        "python /opt/python/cp313-cp313t/bin/python\n"
        "glibc 2.31\narch x86_64\nrustc yes\npath /usr/bin:/bin\n"
    )
    pythons, glibc, arch, rustc, path = parse_discovery(output)
    assert pythons == {"cp39": "/opt/python/cp39-cp39/bin/python",
                       "cp312": "/opt/python/cp312-cp312/bin/python"}
    assert (glibc, arch, rustc, path) == ((2, 31), "x86_64", True, "/usr/bin:/bin")
    configured, *_ = parse_discovery(output, {"cp311": "/usr/bin/python3.11"})
    assert configured == {"cp311": "/usr/bin/python3.11"}


class _Answers:
    """The engine's ``containers.run`` as seen by discovery: each call returns the next
    output (a short one is what a busy engine's log of a short container gave in CI)."""

    def __init__(self, *outputs: str) -> None:
        self.outputs = list(outputs)
        self.containers = self

    def run(self, *_args: object, **_kwargs: object) -> bytes:
        return self.outputs.pop(0).encode()


FULL = "python /opt/python/cp39-cp39/bin/python\nglibc 2.31\narch x86_64\npath /bin\nend\n"
SHORT = "python /opt/python/cp39-cp39/bin/python\n"


def test_a_short_discovery_is_asked_again_and_never_cached(tmp_path: Path) -> None:
    executor = ContainerExecutor(config=farm_config.FarmConfig(root=tmp_path))
    executor.cache = tmp_path / "container"
    image = executor._discover(_Answers(SHORT, FULL), "img", "sha256:ab")  # type: ignore[arg-type]
    assert image.glibc == (2, 31)
    record = executor.cache / "image-sha256-ab.json"
    assert record.is_file()
    # A record without glibc (what the short answer once cached) is looked at again.
    record.write_text('{"id": "sha256:ab", "pythons": {}, "glibc": null, "arch": "x86_64", '
                      '"rustc": false, "path": "/bin"}')
    with pytest.raises(JobError, match="could not read its glibc version"):
        executor._discover(_Answers(SHORT, SHORT, SHORT), "img", "sha256:ab")  # type: ignore[arg-type]
    assert '"glibc": null' in record.read_text()  # the bad answers were not written


def test_writes_outside_the_work_dir_are_named() -> None:
    allowed = [*ALLOWED_WRITES, "/farm/.wheelfarm/work/job-1"]
    changes = [
        {"Path": "/tmp/x", "Kind": 1},
        {"Path": "/root/.cache/pip", "Kind": 1},
        {"Path": "/farm", "Kind": 0},  # a parent of the mounted work dir
        {"Path": "/farm/.wheelfarm", "Kind": 1},  # made by the engine for the mount
        {"Path": "/usr/local/lib/evil.so", "Kind": 1},
        {"Path": "/etc/passwd", "Kind": 0},
        {"Path": "/usr", "Kind": 0},
        {"Path": "/usr/local/lib", "Kind": 0},
        {"Path": "/opt/python/cp39-cp39/lib/python3.9/site-packages/x.py", "Kind": 2},
    ]
    assert check_writes(changes, allowed) == [
        "/etc/passwd", "/opt/python/cp39-cp39/lib/python3.9/site-packages/x.py",
        "/usr/local/lib/evil.so"]
    assert check_writes(None, allowed) == []


def _wheel(directory: Path, name: str, *requires: str) -> Path:
    return make_wheel(directory, name, metadata="".join(f"Requires-Dist: {r}\n" for r in requires))


def test_markers_are_judged_for_the_containers_python(tmp_path: Path) -> None:
    # The host (3.11) skipped importlib-metadata; the container's 3.9 needs it.
    build = _wheel(tmp_path, "build", "packaging>=19", "importlib-metadata>=4.6; "
                   'python_full_version < "3.10.2"', 'tomli>=1.1; python_version < "3.11"',
                   'colorama; os_name == "nt"', 'pytest; extra == "test"')
    packaging_whl = _wheel(tmp_path, "packaging")
    interp = offline.Interpreter((3, 9), "x86_64", (2, 31))
    missing = offline.missing_requirements([build, packaging_whl], ["build"], interp)
    assert missing == ["importlib-metadata>=4.6", "tomli>=1.1"]
    # Asked with the extra, its requirements count too.
    missing = offline.missing_requirements([build, packaging_whl], ["build[test]"], interp)
    assert "pytest" in missing
    newer = offline.Interpreter((3, 12), "x86_64", (2, 31))
    assert offline.missing_requirements([build, packaging_whl], ["build"], newer) == []
