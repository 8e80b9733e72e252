"""The lock (requirements/*.txt) pins everything pyproject.toml asks for: a dependency added to
pyproject without `make lock` turns CI red here, with the command that fixes it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = (ROOT / "pyproject.toml").read_text()
# Each lock file and the pyproject groups it must pin ("" is [project].dependencies).
LOCKS = {"runtime.txt": ("",), "test.txt": ("", "test"), "bench.txt": ("", "test", "bench")}


def wanted(pyproject: str, groups: tuple[str, ...]) -> list[Requirement]:
    """The requirements `pyproject` declares in `groups`."""
    table: dict[str, Any] = tomllib.loads(pyproject)["project"]
    extras: dict[str, list[str]] = table.get("optional-dependencies", {})
    lines = [
        line
        for group in groups
        for line in (table["dependencies"] if group == "" else extras[group])
    ]
    return [Requirement(line) for line in lines]


def pinned(lock: str) -> dict[str, Version]:
    """The lock file's pins by canonical name; fails on a line that is not `name==version`."""
    pins: dict[str, Version] = {}
    for raw in (ROOT / "requirements" / lock).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"requirements/{lock}: {raw!r} is not a pin"
        pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def unpinned(pyproject: str, lock: str) -> list[str]:
    """Names `pyproject` declares for `lock` that the lock does not pin."""
    pins = pinned(lock)
    return sorted(
        {
            req.name
            for req in wanted(pyproject, LOCKS[lock])
            if canonicalize_name(req.name) not in pins
        }
    )


def stale(pyproject: str, lock: str) -> list[str]:
    """Pins outside what `pyproject` now asks for (a raised bound not yet locked)."""
    pins = pinned(lock)
    found = ((req, pins.get(canonicalize_name(req.name))) for req in wanted(pyproject, LOCKS[lock]))
    return [
        f"{req.name}=={version} (wants {req.specifier})"
        for req, version in found
        if version is not None and not req.specifier.contains(version, prereleases=True)
    ]


@pytest.mark.parametrize("lock", sorted(LOCKS))
class TestLock:
    def test_every_declared_dependency_is_pinned(self, lock: str) -> None:
        """Each dependency of the lock's groups has a pin."""
        missing = unpinned(PYPROJECT, lock)
        assert not missing, f"requirements/{lock} lacks {missing}: run `make lock` and commit it"

    def test_every_pin_satisfies_pyproject(self, lock: str) -> None:
        """A raised lower bound or a new upper bound in pyproject is followed by the lock."""
        old = stale(PYPROJECT, lock)
        assert not old, f"requirements/{lock} is stale: {old}; run `make lock` and commit it"

    def test_a_dependency_added_without_locking_is_reported(self, lock: str) -> None:
        """The check bites: pyproject with one more dependency is reported against the lock."""
        added = PYPROJECT.replace("dependencies = [\n", 'dependencies = [\n    "left-pad>=1",\n', 1)
        assert unpinned(added, lock) == ["left-pad"]

    def test_a_raised_bound_without_locking_is_reported(self, lock: str) -> None:
        """pyproject asking for a newer aiohttp than the pin is reported as stale."""
        raised = PYPROJECT.replace('"aiohttp>=3.14,<4"', '"aiohttp>=3.99,<4"', 1)
        assert [entry.split("==")[0] for entry in stale(raised, lock)] == ["aiohttp"]


def test_a_package_has_one_version_in_every_lock() -> None:
    """The image (runtime.txt), CI (test.txt) and the bench run the same releases."""
    locks = [pinned(lock) for lock in LOCKS]
    names: set[str] = set().union(*locks)
    disagree = sorted(
        name for name in names if len({pins[name] for pins in locks if name in pins}) > 1
    )
    assert not disagree, f"versions differ between the lock files: {disagree}"
