"""Defaults shared by several modules, kept free of heavy imports."""

from __future__ import annotations


def _pip_default_index() -> str:
    # pip's own default, so the farm reads from the same public index pip does.
    from pip._internal.models.index import PyPI

    return PyPI.simple_url.rstrip("/") + "/"


DEFAULT_INDEX_URL = _pip_default_index()
