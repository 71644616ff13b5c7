"""One federation for the functional tests of the ops API, and a fresh API (its own database and tokens) per module.

The fuzz tests start a federation of their own (tests/ops_api/test_fuzz.py), so generated input never disturbs the
functional tests' books.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ops_api.ops_support import Federation, Ops, make_ops, running_federation


@pytest.fixture(scope="session")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    yield from running_federation(tmp_path_factory)


@pytest.fixture(scope="module")
def ops(federation: Federation) -> Iterator[Ops]:
    api = make_ops(federation)
    try:
        yield api
    finally:
        api.client.close()
        api.engine.dispose()
