"""The layers of docs/design.md hold: `lint-imports` keeps the contracts of pyproject.toml on this
tree, and breaks them on a copy of the tree where planning imports storage, or a layer above
storage imports the database library."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the tree at `root`, its `service` package first on the path."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_tree(to: Path) -> Path:
    """The service package and the contract, copied to `to`."""
    shutil.copytree(ROOT / "service", to / "service", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", to / "pyproject.toml")
    return to


class TestLayerContract:
    def test_the_tree_keeps_every_contract(self) -> None:
        """The layers, planning's purity and SQL in storage hold for the code as it is."""
        done = lint_imports(ROOT)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "3 kept, 0 broken" in done.stdout

    def test_a_planning_to_storage_import_breaks_the_contract(self, tmp_path: Path) -> None:
        """One import of storage from planning fails both contracts, naming the import."""
        tree = copy_tree(tmp_path)
        timing = tree / "service" / "planning" / "timing.py"
        timing.write_text(timing.read_text() + "\nfrom service.storage import models  # noqa\n")
        done = lint_imports(tree)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "1 kept, 2 broken" in done.stdout
        assert "service.planning.timing -> service.storage.models" in done.stdout

    def test_a_planning_to_sqlalchemy_import_breaks_purity(self, tmp_path: Path) -> None:
        """Planning importing the database library breaks the purity contract alone."""
        tree = copy_tree(tmp_path)
        templates = tree / "service" / "planning" / "templates.py"
        templates.write_text(templates.read_text() + "\nimport sqlalchemy  # noqa\n")
        done = lint_imports(tree)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "2 kept, 1 broken" in done.stdout
        assert "service.planning.templates -> sqlalchemy" in done.stdout

    def test_a_planning_to_config_import_breaks_purity(self, tmp_path: Path) -> None:
        """Planning takes plain values: importing the settings breaks the purity contract
        (config is the frame every layer may use, planning excepted)."""
        tree = copy_tree(tmp_path)
        day = tree / "service" / "planning" / "day.py"
        day.write_text(day.read_text() + "\nfrom service.config import Settings  # noqa\n")
        done = lint_imports(tree)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "2 kept, 1 broken" in done.stdout
        assert "service.planning.day -> service.config" in done.stdout

    @pytest.mark.parametrize(
        ("module", "line"),
        [
            ("conversations/escalations.py", "import sqlalchemy"),
            ("reads/timeline.py", "from sqlmodel import select"),
            ("console/patient.py", "from sqlalchemy.exc import IntegrityError"),
            ("notifications/retry.py", "from sqlmodel import Session"),
            ("web/ops.py", "import sqlalchemy as sa"),
            ("intake/new_treatments.py", "from sqlalchemy.exc import IntegrityError"),
            ("delivery/callbacks.py", "import sqlalchemy as sa"),
        ],
    )
    def test_a_database_import_above_storage_breaks_sql_in_storage(
        self, tmp_path: Path, module: str, line: str
    ) -> None:
        """A layer above storage importing sqlalchemy or sqlmodel itself breaks that contract
        alone, naming the import; through storage it may (the tree as it is)."""
        tree = copy_tree(tmp_path)
        path = tree / "service" / module
        path.write_text(path.read_text() + f"\n{line}  # noqa\n")
        done = lint_imports(tree)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "2 kept, 1 broken" in done.stdout
        assert "SQL only in storage: no sqlalchemy or sqlmodel above it BROKEN" in done.stdout
        importer = "service." + module.removesuffix(".py").replace("/", ".")
        assert f"{importer} -> {line.split()[1].split('.')[0]}" in done.stdout
