"""What ships besides the code: the image's pinned dependencies and the kustomize base."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from tenure.api import RESOURCES
from tenure.api.crd import filename

REPO = Path(__file__).resolve().parents[2]


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        found = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(\S+)", line.strip())
        if found:
            pins[re.sub(r"[-_.]+", "-", found[1]).lower()] = found[2]
    return pins


def test_image_lock_pins_every_dependency_at_the_declared_version() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    locked = (REPO / "requirements.lock").read_text().splitlines()
    pinned = _pins(locked)
    assert all(line.startswith("#") or "==" in line for line in locked if line.strip()), "unpinned line in lock"
    for name, version in _pins(declared).items():
        assert pinned.get(name) == version, f"requirements.lock has {name} {pinned.get(name)}, not {version}: make lock"


def test_kustomize_base_includes_every_crd() -> None:
    listed = yaml.safe_load((REPO / "crds" / "Kustomization").read_text())["resources"]
    assert sorted(listed) == sorted(filename(resource) for resource in RESOURCES)
