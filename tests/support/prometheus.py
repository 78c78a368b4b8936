"""Debian's prometheus package: the prometheus server and promtool, installed by .ci/run (like PostgreSQL)."""

from __future__ import annotations

import shutil


def prometheus_binary(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``; fails (never skips) when the package is missing."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is missing: apt-get install --no-install-recommends prometheus (see .ci/run)")
    return path
