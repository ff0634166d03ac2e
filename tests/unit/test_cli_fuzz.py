"""No input file makes the command line print a traceback: random bytes and random TOML
fed to the recipe, farm config, lock file and job-record loaders through
``wheelfarm.cli.main``, in this process. Bad input is exit 2 with one line of stderr."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wheelfarm.cli import main
from wheelfarm.plan.config import FARM_SCHEMA
from wheelfarm.plan.notifyconfig import NOTIFY_SCHEMA
from wheelfarm.plan.recipe import _TOOL_SCHEMA, RECIPE_SCHEMA

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
GOOD = {"package": {"name": "demo", "version": "1.0"}, "source": {"path": "src"},
        "build": {"targets": ["linux_x86_64"], "pythons": ["cp312"]}}
GOOD_RECIPE = ('[package]\nname = "demo"\nversion = "1.0"\n[source]\npath = "src"\n'
               '[build]\ntargets = ["linux_x86_64"]\npythons = ["cp312"]\n')


@pytest.fixture(autouse=True, scope="module")
def _crash_traces_stay_here(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A trace that a failure writes lands in this run's temporary directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
        yield


@contextlib.contextmanager
def farm() -> Iterator[Path]:
    """A fresh farm directory per example: the recipe memo keys files by their stat,
    which two quick writes of one path may share."""
    root = Path(tempfile.mkdtemp(prefix="wf-fuzz-"))
    try:
        (root / "src").mkdir()
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(argv: list[str]) -> tuple[int, list[str]]:
    """The exit code and the lines of stderr of one command, in this process."""
    errors, output = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(output):
        code = main(argv)
    return code, errors.getvalue().splitlines()


def refused(code: int, lines: list[str]) -> None:
    text = "\n".join(lines)
    assert "Traceback" not in text and "internal error" not in text, text
    assert code == 2, (code, text)
    assert len(lines) == 1 and lines[0].startswith("error: "), text


def fine_or_refused(code: int, lines: list[str]) -> None:
    """A document that happens to be valid plans (exit 0); anything else is refused."""
    if code != 0:
        refused(code, lines)


# -- TOML documents, as text ---------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else (
            ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    pairs = (f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items())
    return "{" + ", ".join(pairs) + "}"


def _toml_string(text: str) -> str:
    # JSON's escapes are TOML's; TOML wants DEL escaped too, and no surrogate pairs.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_text(doc: dict[str, Any]) -> str:
    return "".join(f"{_toml_string(k)} = {_toml_value(v)}\n" for k, v in doc.items())


def over(base: dict[str, Any]) -> Any:
    """The document's tables laid over ``base``'s: near-valid documents, each with a
    few random values, reach the checks a wholly random one never gets to."""
    def merge(doc: dict[str, Any]) -> dict[str, Any]:
        out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
        for key, value in doc.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key].update(value)
            else:
                out[key] = value
        return out
    return merge


text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
words = st.sampled_from(["cp312", "cp39", "3.12", "cp2", "linux_x86_64", "native",
                         "manylinux_2_99_x86_64", "musllinux_2_2_x86_64", "src", "..", "/",
                         "0" * 64, "1.0", "host", "zig", "release", "debug", "4g", "-r x",
                         ">=3.13", "https://x/", "demo"])
scalars = (text | words | st.integers(-(2**63), 2**63 - 1) | st.booleans() | st.floats())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(text, inner, max_size=3), max_leaves=6)


def _leaf(kind: Any) -> st.SearchStrategy[Any]:
    """A value of the declared kind most of the time, anything now and then."""
    typed: dict[Any, st.SearchStrategy[Any]] = {
        str: words | text, bool: st.booleans(), int: st.integers(-3, 2**64),
        float: st.floats() | st.integers(-3, 10),
        "list[str]": st.lists(words | text, max_size=3),
        "dict[str,str]": st.dictionaries(words | text, words | text, max_size=3),
        dict: st.dictionaries(words | text, values, max_size=3),
    }
    if isinstance(kind, tuple):
        return st.one_of(*(_leaf(k) for k in kind))
    right = typed.get(kind, values)
    return st.one_of(right, right, right, right, values)


def shaped(schema: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Documents with the schema's keys (and now and then another) holding values mostly
    of the declared type: they get past the key check and reach each value's checks."""
    optional = {key: shaped(kind) if isinstance(kind, dict) else _leaf(kind)
                for key, kind in schema.items()}
    extra = st.dictionaries(text, values, max_size=1)
    return st.tuples(st.fixed_dictionaries({}, optional=optional), extra,
                     st.integers(0, 9)).map(lambda t: {**t[0], **(t[1] if t[2] == 0 else {})})


# -- the loaders ---------------------------------------------------------------------------

@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_as_a_recipe_are_refused_in_one_line(data: bytes) -> None:
    with farm() as root:
        path = root / "r.toml"
        path.write_bytes(data)
        code, lines = run(["plan", str(path), "--farm", str(root)])
        fine_or_refused(code, lines)
        if code:
            assert str(path) in lines[0]


@FUZZ
@given(shaped(RECIPE_SCHEMA) | shaped(RECIPE_SCHEMA).map(over(GOOD)))
def test_random_toml_recipes_are_planned_or_refused_in_one_line(doc: dict[str, Any]) -> None:
    with farm() as root:
        path = root / "r.toml"
        path.write_text(toml_text(doc), encoding="utf-8")
        fine_or_refused(*run(["plan", str(path), "--farm", str(root)]))


field = words | values
cibw_keys = st.sampled_from(["build", "skip", "archs", "test-command", "test-requires",
                             "before-build", "environment", "manylinux-x86_64-image",
                             "musllinux-aarch64-image", "repair-wheel-command", "x"])
cibw_values = (st.sampled_from(["cp312-*", "cp3?-*", "*-musllinux*", "x86_64 aarch64", "auto",
                                "manylinux_2_28", "musllinux_1_2", "pytest {project}", "{",
                                'A="b c" D=$E', "native", "pp*"]) | values)
cibw_tables = st.dictionaries(cibw_keys, cibw_values, max_size=4)
projects = st.fixed_dictionaries({"project": st.fixed_dictionaries({}, optional={
    "name": st.just("demo") | field, "version": st.just("1.0") | field,
    "requires-python": st.sampled_from([">=3.9", ">=3.13", "<3", "~=3.12", "x"]) | field}),
    "tool": st.fixed_dictionaries({}, optional={
        "wheelfarm": shaped(_TOOL_SCHEMA) | values,
        "cibuildwheel": st.tuples(cibw_tables, st.dictionaries(
            st.sampled_from(["linux", "macos"]), cibw_tables | values, max_size=1)).map(
            lambda t: {**t[0], **t[1]}) | values})})


@FUZZ
@given(st.binary(max_size=300).map(lambda b: (b, "")) | projects.map(
    lambda d: (toml_text(d).encode(), "")) | st.tuples(projects.map(
        lambda d: toml_text(d).encode()), cibw_values.map(str)))
def test_random_project_directories_are_planned_or_refused_in_one_line(
        case: tuple[bytes, str]) -> None:
    """A project's pyproject.toml is its recipe: [project], [tool.wheelfarm] and
    cibuildwheel's settings (the file's and a CIBW_BUILD) are read."""
    data, cibw_build = case
    with farm() as root, pytest.MonkeyPatch.context() as patch:
        if cibw_build:
            patch.setenv("CIBW_BUILD", cibw_build)
        (root / "src" / "pyproject.toml").write_bytes(data)
        fine_or_refused(*run(["plan", str(root / "src"), "--target", "linux_x86_64",
                              "--farm", str(root)]))


@FUZZ
@given(st.binary(max_size=300) | st.tuples(shaped(FARM_SCHEMA), st.lists(
    shaped(NOTIFY_SCHEMA), max_size=2)).map(
    lambda t: toml_text({**t[0], "notify": t[1]} if t[1] else t[0]).encode()))
def test_random_farm_configs_are_refused_in_one_line(data: bytes) -> None:
    with farm() as root:
        (root / "wheelfarm.toml").write_bytes(data)
        (root / "r.toml").write_text(GOOD_RECIPE)
        fine_or_refused(*run(["plan", str(root / "r.toml"), "--farm", str(root)]))


lock_docs = st.fixed_dictionaries({}, optional={
    "schema": st.just(1) | values, "index-url": values,
    "pythons": st.dictionaries(st.sampled_from(["cp312", "cp39", "x"]), st.fixed_dictionaries(
        {}, optional={"static": values, "dynamic": values, "packages": st.lists(
            st.dictionaries(st.sampled_from(["name", "version", "sha256", "x"]), values),
            max_size=2) | values}) | values, max_size=2) | values})


@FUZZ
@given(st.binary(max_size=300) | lock_docs.map(lambda d: json.dumps(d).encode()))
def test_random_lock_files_are_refused_in_one_line(data: bytes) -> None:
    with farm() as root:
        (root / "r.toml").write_text(GOOD_RECIPE)
        (root / "r.lock").write_bytes(data)
        fine_or_refused(*run(["plan", str(root / "r.toml"), "--farm", str(root)]))


statements = st.fixed_dictionaries({
    "subject": st.tuples(st.fixed_dictionaries({
        "name": field, "digest": st.fixed_dictionaries({"sha256": field}) | values})) | values,
    "predicate": st.fixed_dictionaries({"buildDefinition": st.fixed_dictionaries({
        "externalParameters": st.fixed_dictionaries({
            "recipe": st.fixed_dictionaries({"path": st.just("@RECIPE@") | field,
                                             "sha256": field}) | values,
            "target": field, "python": field, "executor": field}, optional={
            "profile": field}) | values}) | values}) | values}) | values


@FUZZ
@given(st.binary(max_size=300) | statements.map(lambda d: json.dumps(d).encode()))
def test_random_job_records_given_to_rebuild_are_refused_in_one_line(data: bytes) -> None:
    """A job's record beside its wheel (the provenance statement: recipe, target, python,
    executor) is what ``rebuild`` reads back."""
    with farm() as root:
        (root / "r.toml").write_text(GOOD_RECIPE)
        record = root / "demo-1.0-cp312-cp312-linux_x86_64.whl.intoto.json"
        record.write_bytes(data.replace(b"@RECIPE@", str(root / "r.toml").encode()))
        refused(*run(["rebuild", str(record), "--farm", str(root)]))


def test_a_recipe_that_is_not_utf8_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(GOOD_RECIPE.replace('"demo"', '"d\xe9mo"').encode("latin-1"))
    (tmp_path / "src").mkdir()
    code, lines = run(["plan", str(path), "--farm", str(tmp_path)])
    refused(code, lines)
    assert lines[0].startswith(f"error: {path}: not UTF-8")


def test_an_unexpected_exception_is_one_line_naming_its_trace(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wheelfarm import api

    def broken(*_args: object, **_kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(api, "plan", broken)
    (tmp_path / ".wheelfarm").mkdir()
    code, lines = run(["plan", "x.toml", "--farm", str(tmp_path)])
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: internal error: KeyError: 'a bug' (full trace in ")
    trace = Path(lines[0].split("(full trace in ", 1)[1].rstrip(")"))
    assert trace.parent == (tmp_path / ".wheelfarm" / "logs").resolve()
    assert "Traceback" in trace.read_text() and "broken" in trace.read_text()


def test_without_a_farm_the_trace_goes_to_the_state_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wheelfarm import api

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(api, "plan", broken)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    code, lines = run(["plan", "x.toml", "--farm", str(tmp_path / "nofarm")])
    assert code == 1 and len(lines) == 1, lines
    assert "RuntimeError: boom\\nsecond line" in lines[0]
    assert str((tmp_path / "state" / "wheelfarm" / "crashes").resolve()) in lines[0]
    assert not (tmp_path / "nofarm").exists()


def test_expected_failures_keep_their_codes(tmp_path: Path) -> None:
    code, lines = run(["plan", str(tmp_path / "missing.toml"), "--farm", str(tmp_path)])
    assert code == 2 and lines == [f"error: {tmp_path / 'missing.toml'}: no such file or "
                                   "directory"]


def test_a_closed_pipe_is_not_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from wheelfarm import api

    def reader_gone(*_args: object, **_kwargs: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(api, "plan", reader_gone)
    # click's own handling (| head): exit 1, nothing said, no trace written
    assert run(["plan", "x.toml"]) == (1, [])
