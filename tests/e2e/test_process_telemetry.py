"""A service process as deployed: OpenTelemetry from OTEL_* alone, a Prometheus scrape endpoint with the
semantic-convention and domain metrics, and a log stream (stderr) of JSON lines only, the ops API's access log
included; `carbon up` hands its children the log format and one scrape port each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from carbon.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from service_kit import identities
from service_kit.accounts import new_account_number
from service_kit.embedded import child_environment
from service_kit.embedded_front_door import write_gateway_callers
from service_kit.logs import ready_address
from service_kit.topology import plan
from tests.ports import free_port
from tests.service_identities import TRUST

pytestmark = pytest.mark.e2e

# A deadline against a hang, not a measurement.
START_DEADLINE_S = 90


class Process:
    """`python -m <package>` with the given variables (and no CARBON_*/OTEL_* of the machine's); stderr to a file."""

    def __init__(self, package: str, env: dict[str, str], log_path: Path) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "OTEL_"))}
        self.log_path = log_path
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", package],
                env={**base, **env},
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
            )
        assert self.process.stdout is not None
        deadline = time.monotonic() + START_DEADLINE_S
        self.ready_line = ""
        for line in self.process.stdout:
            if ready_address(line):
                self.ready_line = line
                break
            if time.monotonic() > deadline:
                break
        assert self.ready_line, f"{package} did not start:\n{log_path.read_text()}"

    def stop(self) -> list[str]:
        self.process.terminate()
        self.process.wait(timeout=30)
        return self.log_path.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Process]]:
    processes: list[Process] = []
    yield processes
    for process in processes:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


def _scrape(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text


def _samples(scraped: str, name: str) -> list[tuple[str, float]]:
    """(labels, value) of each sample of the metric in Prometheus' text format."""
    found = []
    for line in scraped.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line[len(name) :].rpartition(" ")
            found.append((labels, float(value)))
    return found


def test_a_ledger_serves_its_metrics_for_prometheus_and_logs_json_only(tmp_path: Path, started: list[Process]) -> None:
    metrics_port, grpc_port = free_port(), free_port()
    env = {
        "CARBON_PORT": str(grpc_port),
        "CARBON_DATA_DIR": str(tmp_path / "data"),
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(metrics_port),
        **TRUST.env(identities.regional("330000", "ledger")),
    }
    ledger = Process("ledger_svc", env, tmp_path / "ledger.log")
    started.append(ledger)
    assert json.loads(ledger.ready_line)["msg"] == "READY"
    with TRUST.channel(f"127.0.0.1:{grpc_port}", identities.OPS_API) as channel:
        stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
        stub.PostTransfers(
            ledger_service_pb2.PostTransfersRequest(
                transfers=[
                    ledger_service_pb2.Transfer(
                        transfer_id="metrics-earn",
                        debit_account="system:issuance",
                        credit_account=new_account_number("330000"),
                        amount_points=250,
                        code=ledger_service_pb2.TRANSFER_CODE_EARN,
                    )
                ]
            ),
            timeout=10,
        )
        assert stub.CheckConservation(ledger_service_pb2.CheckConservationRequest(), timeout=30).balanced
    scraped = _scrape(metrics_port)
    calls = _samples(scraped, "rpc_server_duration_milliseconds_count")
    assert any('rpc_method="PostTransfers"' in labels and 'rpc_grpc_status_code="0"' in labels for labels, _ in calls)
    assert [value for _, value in _samples(scraped, "carbon_points_issued_total")] == [250.0]
    assert [value for _, value in _samples(scraped, "carbon_ledger_balanced")] == [1.0]
    assert [value for _, value in _samples(scraped, "carbon_ledger_outstanding")] == [250.0]
    pool_usage = [line for line in scraped.splitlines() if line.startswith("db_client_connections_usage")]
    assert any('state="used"' in line for line in pool_usage), "the pool's usage (SQLAlchemy instrumentation)"
    lines = ledger.stop()
    assert lines and all(json.loads(line)["service"] == "ledger_svc" for line in lines)


def test_the_ops_api_logs_each_request_as_json_with_its_fields(tmp_path: Path, started: list[Process]) -> None:
    metrics_port, http_port = free_port(), free_port()
    env = {
        "CARBON_PORT": str(http_port),
        "CARBON_DATA_DIR": str(tmp_path / "data"),
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(metrics_port),
    }
    ops = Process("ops_api", env, tmp_path / "ops.log")
    started.append(ops)
    assert httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{http_port}/v1/accounts/x/balance", timeout=10).status_code == 401
    assert "http_server" in _scrape(metrics_port)  # the FastAPI instrumentation's request metrics
    entries = [json.loads(line) for line in ops.stop()]
    access = [entry for entry in entries if entry["logger"] == "uvicorn.access"]
    assert {(entry["http.method"], entry["url.path"], entry["http.status_code"]) for entry in access} >= {
        ("GET", "/healthz", 200),
        ("GET", "/v1/accounts/x/balance", 401),
    }
    assert not [entry for entry in entries if "\x1b" in json.dumps(entry, ensure_ascii=False)]


def test_carbon_up_gives_its_children_the_log_format_and_a_scrape_port_each(tmp_path: Path) -> None:
    registry = plan(["330000", "110000"])
    parent = {
        "CARBON_LOG_FORMAT": "text",
        "CARBON_LOG_LEVEL": "DEBUG",
        "CARBON_DATABASE_URL": "postgresql://not-for-children",
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_PORT": "9500",
        "OTEL_SERVICE_NAME": "carbon-up",
    }
    write_gateway_callers(tmp_path, registry)  # the ops API's gateway key, which child_environment reads
    children = [child_environment(spec, registry, tmp_path, parent) for spec in registry.processes()]
    assert all(env["CARBON_LOG_FORMAT"] == "text" and env["CARBON_LOG_LEVEL"] == "DEBUG" for env in children)
    assert all("CARBON_DATABASE_URL" not in env and "OTEL_SERVICE_NAME" not in env for env in children)
    assert all(env["OTEL_METRICS_EXPORTER"] == "prometheus" for env in children)
    ports = [int(env["OTEL_EXPORTER_PROMETHEUS_PORT"]) for env in children]
    assert ports == list(range(9500, 9500 + len(children)))
