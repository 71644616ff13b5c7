"""Benchmark of rewards_svc on PostgreSQL: redemptions/s and p99 latency with 32 concurrent gRPC clients.

Each redemption is the whole flow through the real servers: rewards (a `python -m rewards_svc` process) → ledger
Hold → vouchers → ledger CommitHold. Printed beside the same run's psycopg single-row UPDATE transactions/s at the
same concurrency (the database's floor for "one small transaction"). Until ledger_svc serves holds, the ledger is
the in-memory stand-in from tests/rewards, served in this process; the output says which. The last line is one JSON
object; "ratio" is redemptions/s ÷ baseline transactions/s.

    CARBON_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python bench/bench_rewards.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import bench_trust_support  # type: ignore[import-not-found,unused-ignore]
import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from carbon.ledger.v1 import ledger_service_pb2 as ledger_pb2
from carbon.ledger.v1 import ledger_service_pb2_grpc as ledger_pb2_grpc
from carbon.rewards.v1 import rewards_service_pb2 as pb
from carbon.rewards.v1 import rewards_service_pb2_grpc as pb_grpc
from service_kit import identities
from service_kit.accounts import new_account_number
from service_kit.db import normalize_url
from service_kit.logs import ready_address
from service_kit.server import Registration, start_server
from service_kit.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 32
REDEMPTIONS = int(os.environ.get("BENCH_REDEMPTIONS", "3000"))
ACCOUNTS = 256
BASELINE_S = 3.0
REGION = "330000"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def real_ledger_ready() -> bool:
    from ledger_svc.server import LedgerServiceServicer

    return all(name in LedgerServiceServicer.__dict__ for name in ("Hold", "CommitHold", "GetHold", "RefundTransfer"))


def spawn(module: str, port: int, database_url: str, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CARBON_PORT": str(port), "CARBON_DATABASE_URL": database_url, "CARBON_REGION": REGION}
    env.update({"CARBON_LOG_LEVEL": "WARNING", "CARBON_MAX_WORKERS": "64", **extra})
    env.update(bench_trust_support.env(module, REGION))
    process = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=subprocess.PIPE)
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if ready_address(line.decode()):
            return process
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"{module} did not start")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_clients(work: Callable[[int], None], count: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(count))

    def client() -> None:
        mine: list[float] = []
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            start = time.perf_counter()
            work(index)
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, sorted(latencies)


def baseline_updates_per_s(url: str) -> float:
    """psycopg, autocommit: one single-row UPDATE per transaction, CLIENTS connections, for BASELINE_S seconds."""
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_counter (id int PRIMARY KEY, n bigint NOT NULL)")
        conn.execute("INSERT INTO bench_counter SELECT g, 0 FROM generate_series(0, 1023) g")
    done = [0] * CLIENTS
    stop = time.perf_counter() + BASELINE_S

    def client(slot: int) -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            row = slot
            while time.perf_counter() < stop:
                conn.execute("UPDATE bench_counter SET n = n + 1 WHERE id = %s", (row % 1024,))
                row += CLIENTS
                done[slot] += 1

    threads = [threading.Thread(target=client, args=(slot,)) for slot in range(CLIENTS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - start)


def main() -> int:
    server_url = normalize_url(os.environ.get("CARBON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    schemas = {name: f"bench_rewards_{name}_{uuid.uuid4().hex[:8]}" for name in ("rewards", "ledger", "baseline")}
    urls = {}
    with admin.connect() as conn:
        for name, schema in schemas.items():
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
            urls[name] = url.render_as_string(hide_password=False)
    processes: list[subprocess.Popen[bytes]] = []
    stoppers: list[Callable[[], None]] = []
    real = real_ledger_ready()
    try:
        if real:
            ledger_port = free_port()
            processes.append(spawn("ledger_svc", ledger_port, urls["ledger"], {}))
            ledger_address = f"127.0.0.1:{ledger_port}"
        else:
            sys.path.insert(0, str(ROOT))
            from tests.rewards.rewards_fake_ledger import FakeLedger, FakeLedgerServicer

            fake = FakeLedgerServicer(FakeLedger())  # type: ignore[abstract]
            running = start_server(
                bench_trust_support.server(Settings(service="ledger_svc", region_code=REGION, max_workers=64)),
                [
                    Registration(
                        ledger_pb2_grpc.add_LedgerServiceServicer_to_server, fake, "carbon.ledger.v1.LedgerService"
                    )
                ],
            )
            stoppers.append(running.stop)
            ledger_address = running.address
        rewards_port = free_port()
        rewards_extra = {"CARBON_LEDGER_ADDRESS": ledger_address, "CARBON_MAX_WORKERS": str(CLIENTS)}
        processes.append(spawn("rewards_svc", rewards_port, urls["rewards"], rewards_extra))
        # The seed is earned points (ingest's to credit); the catalogue and redemptions are the ops API's to call.
        ledger_channel = bench_trust_support.channel(ledger_address, identities.regional(REGION, "ingest"))
        rewards_channel = bench_trust_support.channel(f"127.0.0.1:{rewards_port}", identities.OPS_API)
        ledger = ledger_pb2_grpc.LedgerServiceStub(ledger_channel)
        rewards = pb_grpc.RewardsServiceStub(rewards_channel)

        accounts = [new_account_number(REGION) for _ in range(ACCOUNTS)]
        ledger.PostTransfers(
            ledger_pb2.PostTransfersRequest(
                transfers=[
                    ledger_pb2.Transfer(
                        transfer_id=f"bench-earn-{account}", debit_account="system:issuance", credit_account=account,
                        amount_points=1_000_000, code=ledger_pb2.TRANSFER_CODE_EARN,
                    )
                    for account in accounts
                ]
            ),
            timeout=60,
        )  # fmt: skip
        item = pb.Reward(
            reward_id="bench-item", name_en="Bench item", category=pb.REWARD_CATEGORY_PRACTICAL, price_points=100,
            provider="bench", stock=-1, voucher_lifetime_days=30,
        )  # fmt: skip
        rewards.CreateReward(pb.CreateRewardRequest(request_id="bench-create", reward=item), timeout=10)

        def redeem(index: int) -> None:
            request = pb.RedeemRequest(
                request_id=f"bench-{index}", account_number=accounts[index % ACCOUNTS], reward_id="bench-item",
                quantity=1, region_code=REGION,
            )  # fmt: skip
            response = rewards.Redeem(request, timeout=30)
            assert response.redemption.state == pb.REDEMPTION_STATE_COMPLETED

        run_clients(lambda index: redeem(REDEMPTIONS + index), CLIENTS * 4)  # warm-up
        names = ["ledger_svc", "rewards_svc"] if real else ["rewards_svc"]
        cpu_before = [process_cpu_s(process.pid) for process in processes]
        elapsed, latencies = run_clients(redeem, REDEMPTIONS)
        cpu_ms = {
            name: 1000 * (process_cpu_s(process.pid) - before) / REDEMPTIONS
            for name, process, before in zip(names, processes, cpu_before, strict=True)
        }
        rate = REDEMPTIONS / elapsed
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        ledger_channel.close()
        rewards_channel.close()
        for process in processes:  # the baseline gets the database (and its connection slots) to itself
            process.terminate()
            process.wait(15)
        processes.clear()
        baseline = baseline_updates_per_s(urls["baseline"])
    finally:
        for process in processes:
            process.terminate()
            process.wait(15)
        for stop in stoppers:
            stop()
        with admin.connect() as conn:
            for schema in schemas.values():
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    ledger_kind = "ledger_svc on PostgreSQL" if real else "in-memory ledger stand-in (ledger_svc has no holds yet)"
    print(f"ledger: {ledger_kind}")
    print(f"baseline: psycopg single-row UPDATE transactions, {CLIENTS} connections   {baseline:10,.0f} /s")
    print(f"redemptions (rewards + ledger over gRPC), {CLIENTS} clients          {rate:10,.0f} /s")
    print(f"redemption latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print("CPU per redemption: " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in cpu_ms.items()))
    print(
        json.dumps(
            {
                "bench": "rewards",
                "clients": CLIENTS,
                "redemptions": REDEMPTIONS,
                "redemptions_per_s": round(rate, 1),
                "p50_ms": round(p50, 2),
                "p99_ms": round(p99, 2),
                "baseline_update_tx_per_s": round(baseline, 1),
                "ratio": round(rate / baseline, 4),
                "real_ledger": real,
                "cpu_ms_per_redemption": {name: round(ms, 3) for name, ms in cpu_ms.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
