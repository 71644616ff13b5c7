"""One federation per test module (fuzzing must not disturb the functional tests' books)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops_api.ops_support import Federation, Ops, make_ops, start_federation


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    running = start_federation(Path(tmp_path_factory.mktemp("ops-federation")))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def ops(federation: Federation) -> Iterator[Ops]:
    api = make_ops(federation)
    try:
        yield api
    finally:
        api.client.close()
        api.engine.dispose()
