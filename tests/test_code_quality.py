"""The public surface is fixed and documented; the code passes the project's linters."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import diced

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = {
    "AlreadyExistsError", "ArrayDtype", "ConflictError", "DicedArray", "DicedException",
    "DicedRepo", "DicedStore", "FormatVersionError", "InvalidIndexError", "InvalidInputError",
    "LockedError", "MergeConflict", "MergeConflictError", "NodeInfo", "NotFoundError",
    "ReadOnlyStoreError", "StorageError", "VersionDiff", "__version__",
}


def test_public_surface_is_fixed_and_documented() -> None:
    assert set(diced.__all__) == PUBLIC
    for name in PUBLIC - {"__version__"}:
        obj = getattr(diced, name)
        assert obj.__doc__ and obj.__doc__.strip(), f"{name} has no docstring"
        for attr, member in vars(obj).items():
            if not attr.startswith("_") and callable(member):
                assert member.__doc__, f"{name}.{attr} has no docstring"


def test_every_error_derives_from_diced_exception() -> None:
    for name in PUBLIC:
        obj = getattr(diced, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, diced.DicedException)


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or f"{Path(sys.executable).parent}/ruff"
    result = subprocess.run([ruff, "check", "diced", "viewer", "tests", "benchmarks"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
