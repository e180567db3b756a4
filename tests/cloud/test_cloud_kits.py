"""The kits of tests/ on the GCS and S3 emulators: zarr's Store kit, the differential oracle
(DicedArray vs zarr vs numpy) and the multi-writer state machine (threads and processes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parents[1]))

from test_differential_oracle import differential_test
from test_multiwriter_machine import MultiWriterMachine
from test_zarr_store_kit import NodeStoreKit


class TestCloudNodeStore(NodeStoreKit):
    @pytest.fixture
    def location(self, cloud_location: str) -> str:
        return cloud_location


def test_both_paths_read_what_numpy_holds(cloud_location: str) -> None:
    differential_test(lambda: cloud_location, examples=8)()


@pytest.mark.slow
def test_multi_writer_machine(cloud_location: str) -> None:
    at_location = type("CloudMultiWriterMachine", (MultiWriterMachine,),
                       {"location": cloud_location})
    machine = settings(max_examples=2, stateful_step_count=4, deadline=None,
                       suppress_health_check=list(HealthCheck))(at_location)
    machine.TestCase().runTest()
