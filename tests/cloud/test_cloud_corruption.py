"""The corruption kit (diced.testing.corruption) on the GCS and S3 emulators."""

from __future__ import annotations

import pytest

from diced.testing.corruption import CorruptionTests


class TestCloudCorruption(CorruptionTests):
    @pytest.fixture
    def location(self, cloud_location: str) -> str:
        return cloud_location
