"""Benchmark of rewards_svc on PostgreSQL: redemptions/s and p99 latency with 32 concurrent gRPC clients.

Each redemption is the whole flow through the real servers, a `python -m rewards_svc` and a `python -m ledger_svc`
process, each on PostgreSQL: rewards reserves it (redemption, stock and vouchers in one transaction shared with the
concurrent requests for the same reward, ADR 0304) → one ledger Hold that commits at once (ADR 0303), sent in a
HoldBatch call with the concurrent redemptions' Holds (ADR 0305; CARBON_REDEEM_HOLD_BATCH=0 in the environment sends
each alone) → COMPLETED (one transaction for the redemptions finishing together). The baseline, measured on the
same server in the same run after the services stopped: pgbench's simple-update transactions/s at the same
concurrency (bench_baseline_support.py). The last line is one JSON object; "ratio" is
redemptions/s ÷ pgbench TPS (higher is better; issue 19 asks for 0.2). CPU milliseconds per redemption are printed for
ledger_svc, rewards_svc, the bench's own clients and PostgreSQL (every server process, when it runs on this machine):
their sum against two cores' worth tells whether the run was bound by CPU or by waiting.

BENCH_REWARDS_MODE picks the contention: `spread` (default: 256 accounts, one reward of unlimited stock), `hot-accounts`
(8 accounts: many redemptions of one account at once, each a row lock in the ledger) or `hot-reward` (256 accounts,
one reward whose stock is counted: every redemption takes from the same stock).

CARBON_BENCH_PROFILE=<dir>: py-spy of the ledger and rewards processes for the first CARBON_BENCH_PROFILE_S seconds
(default 10) of the timed phase (CARBON_BENCH_PROFILE_IDLE=1: waiting threads too); raise BENCH_REDEMPTIONS so the
phase lasts at least that long.

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
from bench_baseline_support import pgbench_tps  # type: ignore[import-not-found,unused-ignore]
from bench_ingest_support import (  # type: ignore[import-not-found,unused-ignore]
    Process,
    process_cpu_seconds,
    profiled,
    server_cpu_between,
    server_cpu_seconds,
)
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

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
REDEMPTIONS = int(os.environ.get("BENCH_REDEMPTIONS", "3000"))
# Services scale with processes sharing a port (SO_REUSEPORT, ARCHITECTURE.md): rewards runs this many, one per core
# here; one process is bound by its own GIL.
REWARDS_PROCESSES = int(os.environ.get("BENCH_REWARDS_PROCESSES", "1"))
MODE = os.environ.get("BENCH_REWARDS_MODE", "spread")
ACCOUNTS = 8 if MODE == "hot-accounts" else 256
# A counted stock large enough for every redemption of the run (warm-up included).
STOCK = REDEMPTIONS + 4 * CLIENTS if MODE == "hot-reward" else -1
REGION = "330000"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def spawn(module: str, port: int, database_url: str, extra: dict[str, str]) -> subprocess.Popen[str]:
    env = {**os.environ, "CARBON_PORT": str(port), "CARBON_DATABASE_URL": database_url, "CARBON_REGION": REGION}
    env.update({"CARBON_LOG_LEVEL": "WARNING", "CARBON_MAX_WORKERS": "64", **extra})
    env.update(bench_trust_support.env(module, REGION))
    process = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if ready_address(line):
            return process
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"{module} did not start")


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
    processes: list[subprocess.Popen[str]] = []
    try:
        ledger_port = free_port()
        processes.append(spawn("ledger_svc", ledger_port, urls["ledger"], {}))
        ledger_address = f"127.0.0.1:{ledger_port}"
        rewards_port = free_port()
        rewards_extra = {"CARBON_LEDGER_ADDRESS": ledger_address, "CARBON_MAX_WORKERS": str(CLIENTS)}
        rewards_extra["CARBON_REUSE_PORT"] = "1" if REWARDS_PROCESSES > 1 else "0"
        for _ in range(REWARDS_PROCESSES):
            processes.append(spawn("rewards_svc", rewards_port, urls["rewards"], rewards_extra))
        # The seed is earned points (ingest's to credit); the catalogue and redemptions are the ops API's to call.
        ledger_channel = bench_trust_support.channel(ledger_address, identities.regional(REGION, "ingest"))
        # One channel (one connection) per client: with several rewards processes on the port, the kernel spreads
        # connections, not calls, over them.
        rewards_channels = [
            bench_trust_support.channel(
                f"127.0.0.1:{rewards_port}", identities.OPS_API, [("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(CLIENTS)
        ]
        client_stubs = [pb_grpc.RewardsServiceStub(channel) for channel in rewards_channels]
        ledger = ledger_pb2_grpc.LedgerServiceStub(ledger_channel)

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
            provider="bench", stock=STOCK, voucher_lifetime_days=30,
        )  # fmt: skip
        client_stubs[0].CreateReward(pb.CreateRewardRequest(request_id="bench-create", reward=item), timeout=10)

        def redeem(index: int) -> None:
            request = pb.RedeemRequest(
                request_id=f"bench-{index}", account_number=accounts[index % ACCOUNTS], reward_id="bench-item",
                quantity=1, region_code=REGION,
            )  # fmt: skip
            response = client_stubs[index % CLIENTS].Redeem(request, timeout=30)
            assert response.redemption.state == pb.REDEMPTION_STATE_COMPLETED

        run_clients(lambda index: redeem(REDEMPTIONS + index), CLIENTS * 4)  # warm-up
        names = ["ledger_svc"] + ["rewards_svc"] * REWARDS_PROCESSES
        cpu_before = [process_cpu_seconds(process.pid) for process in processes]
        # The bench's own 32 clients and PostgreSQL share the two cores with the services: their CPU per redemption
        # shows what is left of the budget for the services.
        clients_before, servers_before = process_cpu_seconds(os.getpid()), server_cpu_seconds()
        spied = [
            Process(f"{name}_{i}", process, "") for i, (name, process) in enumerate(zip(names, processes, strict=True))
        ]
        profile_s = float(os.environ.get("CARBON_BENCH_PROFILE_S", "10"))
        with profiled(spied, profile_s):  # samples while the clients run; a no-op without CARBON_BENCH_PROFILE
            elapsed, latencies = run_clients(redeem, REDEMPTIONS)
        clients_after, servers_after = process_cpu_seconds(os.getpid()), server_cpu_seconds()
        cpu_ms = dict.fromkeys(names, 0.0)  # the rewards processes' CPU summed
        for name, process, before in zip(names, processes, cpu_before, strict=True):
            cpu_ms[name] += 1000 * (process_cpu_seconds(process.pid) - before) / REDEMPTIONS
        cpu_ms["bench_clients"] = 1000 * (clients_after - clients_before) / REDEMPTIONS
        servers = server_cpu_between(servers_before, servers_after)
        cpu_ms["postgres"] = 1000 * servers["postgres"] / REDEMPTIONS
        rate = REDEMPTIONS / elapsed
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        ledger_channel.close()
        for channel in rewards_channels:
            channel.close()
        for process in processes:  # the baseline gets the database (and its connection slots) to itself
            process.terminate()
            process.wait(15)
        processes.clear()
        baseline = pgbench_tps(urls["baseline"], CLIENTS)
    finally:
        for process in processes:
            process.terminate()
            process.wait(15)
        with admin.connect() as conn:
            for schema in schemas.values():
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    print(f"baseline: pgbench simple-update, {CLIENTS} clients                {baseline:10,.0f} tps")
    print(f"redemptions (rewards + ledger over gRPC), {CLIENTS} clients, {MODE}  {rate:10,.0f} /s")
    print(f"redemption latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print("CPU per redemption: " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in cpu_ms.items()))
    print(
        json.dumps(
            {
                "bench": "rewards",
                "mode": MODE,
                "accounts": ACCOUNTS,
                "clients": CLIENTS,
                "rewards_processes": REWARDS_PROCESSES,
                "redemptions": REDEMPTIONS,
                "redemptions_per_s": round(rate, 1),
                "p50_ms": round(p50, 2),
                "p99_ms": round(p99, 2),
                "baseline_pgbench_tps": round(baseline, 1),
                "ratio": round(rate / baseline, 4),
                "cpu_ms_per_redemption": {name: round(ms, 3) for name, ms in cpu_ms.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
