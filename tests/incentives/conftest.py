"""Fixtures of the incentives tests (the harness itself is tests/incentives/incentives_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.incentives.incentives_harness import World, make_world


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    yield from make_world(database_url, tmp_path)


@pytest.fixture
def pg_world(postgres_url: str, tmp_path: Path) -> Iterator[World]:
    yield from make_world(postgres_url, tmp_path)
