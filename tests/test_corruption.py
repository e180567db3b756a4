"""The corruption kit (diced.testing.corruption) on memory and local-disk stores.

The same kit runs on the GCS and S3 emulators in tests/cloud/test_cloud_corruption.py.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from diced.testing.corruption import CorruptionTests


class TestMemoryCorruption(CorruptionTests):
    @pytest.fixture
    def location(self) -> str:
        return f"memory://corruption-kit/{uuid.uuid4().hex}"


class TestLocalCorruption(CorruptionTests):
    @pytest.fixture
    def location(self, tmp_path: Path) -> str:
        return str(tmp_path / "store")
