"""Benchmark of identity_svc on PostgreSQL: account openings/s and batched consent checks/s.

The baseline is a database write: pgbench's simple-update transactions/s with as many clients as opening threads, on
the same server in the same run (bench_baseline_support.py). The cost of one HMAC-SHA256 + one AES-GCM encryption in
a loop (the cryptographic floor of an opening) is printed beside it for reference. The last line is one JSON object;
"ratio" is openings/s ÷ pgbench TPS (higher is better; issue 19 asks for 0.1); "ratio_checks_cached" is cached
consent checks/s ÷ pgbench TPS.

    CARBON_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python bench/bench_identity.py
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from bench_baseline_support import pgbench_tps  # type: ignore[import-not-found,unused-ignore]
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from identity_svc.domain.accounts import Binding, Channel, Opening
from identity_svc.domain.consents import ConsentAction, DataCategory, Question
from identity_svc.domain.real_name import id_check_char
from identity_svc.keys import KeyRing
from identity_svc.server import build_services
from identity_svc.store.consent_cache import InProcessConsentCache
from service_kit.db import make_engine, migrate, normalize_url
from service_kit.settings import Settings

OPENINGS = int(os.environ.get("BENCH_OPENINGS", "1000"))
OPEN_THREADS = 4
BATCH = 500
CHECK_BATCHES = 40
BASELINE_LOOPS = 20_000


def id_numbers(count: int) -> list[str]:
    rng = random.Random(7)
    numbers: set[str] = set()
    while len(numbers) < count:
        birth = datetime(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 55))
        first17 = f"330106{birth:%Y%m%d}{rng.randrange(1000):03d}"
        numbers.add(first17 + id_check_char(first17))
    return sorted(numbers)


def baseline_ops_per_s(keys: KeyRing) -> float:
    """One HMAC of an ID number + one AES-GCM encryption of a real-name record, per loop."""
    record = json.dumps({"name": "张三", "id_number": "11010519491231002X", "phone_number": "13812345678"}).encode()
    start = time.perf_counter()
    for index in range(BASELINE_LOOPS):
        keys.id_hash(f"1101051949123{index:05d}")
        keys.seal(record, b"3300001234567890")
    return BASELINE_LOOPS / (time.perf_counter() - start)


def main() -> int:
    server_url = normalize_url(os.environ.get("CARBON_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    schema = f"bench_identity_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = make_engine(url.render_as_string(hide_password=False), pool_size=OPEN_THREADS + 2)
    try:
        migrate("identity_svc", engine)
        keys = KeyRing(os.urandom(32), os.urandom(32), {"bench": os.urandom(32)}, "bench")
        now = datetime.now(UTC)
        # Accounts are opened two days back: the consents below take effect yesterday, and none may predate its account.
        clock = [now - timedelta(days=2)]
        services = build_services(
            Settings(service="identity_svc"), engine, keys=keys, cache=InProcessConsentCache(), clock=lambda: clock[0]
        )
        numbers = id_numbers(OPENINGS)
        openings = [
            Opening(f"bench-{i}", Channel.INTERNET_PLATFORM, "张三", number, f"138{i:08d}",
                    Binding("alipay", f"u{i}"), "", "")
            for i, number in enumerate(numbers)
        ]  # fmt: skip
        start = time.perf_counter()
        with ThreadPoolExecutor(OPEN_THREADS) as pool:
            accounts = [view.account_number for view, _ in pool.map(services.accounts.open_account, openings)]
        openings_per_s = OPENINGS / (time.perf_counter() - start)

        clock[0] = now
        yesterday = now - timedelta(days=1)
        for index, account in enumerate(accounts):
            services.consents.record(
                ConsentAction.GRANT, request_id=f"g{index}", account_number=account,
                category=int(DataCategory.TRANSIT), channel=1, recorded_by="bench", effective_at=yesterday,
            )  # fmt: skip
        rng = random.Random(11)
        batches = [
            [Question(rng.choice(accounts), rng.choice((1, 2)), now - timedelta(hours=1)) for _ in range(BATCH)]
            for _ in range(CHECK_BATCHES)
        ]

        def run_checks(cold: bool) -> float:
            start = time.perf_counter()
            for batch in batches:
                if cold:
                    services.consents.cache.invalidate({q.account_number for q in batch})
                answers = services.consents.check(batch)
                assert len(answers) == BATCH
            return BATCH * CHECK_BATCHES / (time.perf_counter() - start)

        cold_checks_per_s = run_checks(cold=True)
        run_checks(cold=False)
        warm_checks_per_s = run_checks(cold=False)
        crypto_floor = baseline_ops_per_s(keys)
        engine.dispose()
        baseline = pgbench_tps(url.render_as_string(hide_password=False), OPEN_THREADS)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    print(f"baseline: pgbench simple-update, {OPEN_THREADS} clients          {baseline:12,.0f} tps")
    print(f"for reference: one HMAC-SHA256 + one AES-GCM encryption {crypto_floor:9,.0f} /s")
    print(f"account openings ({OPEN_THREADS} threads, PostgreSQL)        {openings_per_s:12,.0f} /s")
    print(f"consent checks, batches of {BATCH}, database (cold)  {cold_checks_per_s:12,.0f} /s")
    print(f"consent checks, batches of {BATCH}, cached          {warm_checks_per_s:12,.0f} /s")
    print(
        json.dumps(
            {
                "crypto_floor_hmac_aesgcm_per_s": round(crypto_floor),
                "baseline_pgbench_tps": round(baseline, 1),
                "openings_per_s": round(openings_per_s),
                "consent_checks_cold_per_s": round(cold_checks_per_s),
                "consent_checks_cached_per_s": round(warm_checks_per_s),
                "ratio": round(openings_per_s / baseline, 4),
                "ratio_checks_cached": round(warm_checks_per_s / baseline, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
