"""The OpenAPI document fuzzed with schemathesis against the API on real uvicorn: no 5xx on any generated input.

CARBON_FUZZ_EXAMPLES sets the examples per operation, as for the gRPC fuzz (tests/faults/test_fuzz.py): `make test`
sends 6 to each of some 75 operations, a fresh random draw each run, and `make fuzz-deep` 200 (docs/adr/0024 and
0026 say why)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ops_api.ops_support import Federation, Ops, RunningApi, make_ops, running_federation, serve_uvicorn

EXAMPLES_PER_OPERATION = int(os.environ.get("CARBON_FUZZ_EXAMPLES", "6"))


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """Books of the fuzzer's own: generated input must not disturb the functional tests' federation."""
    yield from running_federation(tmp_path_factory)


@pytest.fixture(scope="module")
def running(federation: Federation) -> Iterator[tuple[Ops, RunningApi]]:
    ops = make_ops(federation)
    api = serve_uvicorn(ops.app)
    yield ops, next(api)
    api.close()
    ops.engine.dispose()


def test_health_and_a_real_request_through_uvicorn(running: tuple[Ops, RunningApi]) -> None:
    ops, api = running
    assert requests.get(f"{api.base_url}/healthz", timeout=5).status_code == 200
    me = requests.get(f"{api.base_url}/v1/me", headers=ops.headers("zj-staff"), timeout=5)
    assert me.json()["region_code"] == "330000" and me.headers["x-request-id"]
    # The document is built on its first request (every proto message's model): a deadline against a hang, not a
    # measurement, long enough for a loaded 2-core machine.
    docs = requests.get(f"{api.base_url}/openapi.json", timeout=60).json()
    assert docs["openapi"].startswith("3.1") and "/v1/adjustments/{adjustment_id}/approve" in docs["paths"]


# A deadline against a hang, growing with the examples: a dozen generated requests for each of about 75 operations took
# past the default 120 s on a 2-core machine under a load of 30+.
@pytest.mark.timeout(300 + 50 * EXAMPLES_PER_OPERATION)
def test_no_generated_input_gets_a_server_error(running: tuple[Ops, RunningApi]) -> None:
    ops, api = running
    schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
    session = requests.Session()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) > 30
    for operation in operations:
        who = st.sampled_from(["admin", "op1", "viewer", "zj-staff"])

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), caller=who)
        def check(case: schemathesis.Case, caller: str) -> None:  # type: ignore[type-arg]
            response = case.call(base_url=api.base_url, session=session, headers=ops.headers(caller))
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")
            elif response.status_code >= 400:
                content_type = response.headers.get("content-type") or [""]
                assert content_type[0] == "application/problem+json", response.text

        check()
    assert not failures, "\n".join(failures[:10])
