"""Fixtures of the ingest tests (the harness itself is tests/ingest/ingest_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ingest.ingest_harness import Harness, make_harness, real_clock


@pytest.fixture
def harness(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    yield from make_harness(database_url, data_dir=tmp_path)


@pytest.fixture
def real_harness(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    """Real identity and real ledger: the worked cases end to end."""
    yield from make_harness(database_url, data_dir=tmp_path, real_identity=True, clock=real_clock())


@pytest.fixture
def shanghai_harness(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    yield from make_harness(database_url, data_dir=tmp_path, region="310000")
