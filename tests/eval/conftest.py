"""Fixtures of the Ray tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def ray_temp() -> Iterator[Path]:
    """A temp dir for a local Ray cluster (its processes carry it in their command lines, so
    the test finds them); the cluster is shut down and the dir removed afterwards."""
    import ray

    temp = Path(f"/tmp/trdr{os.getpid() % 100000}")
    try:
        yield temp
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
