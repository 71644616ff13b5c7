"""Against a real Redis Cluster (three masters started here, redis-server in cluster mode): the client is a cluster
client when the URL says so, and the rate limiter, ingest's dedupe and identity's consent cache work on it, their
keys spread over the nodes, each operation on one slot."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from identity_svc.domain.consents import ConsentAction, ConsentEvent, ConsentTimeline, DataCategory
from identity_svc.store.consent_cache import RedisConsentCache
from ingest_svc.store.dedupe import RedisDedupe
from service_kit import redis_client
from service_kit.ratelimit import RedisLimiter
from service_kit.redis_client import hash_tag
from tests.ports import free_ports

pytestmark = pytest.mark.redis_cluster


def _slot(cluster: RedisCluster, key: bytes | str) -> int:
    return int(cluster.keyslot(key))  # type: ignore[no-untyped-call]


MASTERS = 3
CREATE_OPTIONS = ("--cluster-replicas", "0", "--cluster-yes")
# A deadline against a hang, not a measurement.
CLUSTER_DEADLINE_S = 60


# Client and cluster-bus ports (each node's bus port next to its client port, so candidates step by two) from a range
# of their own: below the blocks the end-to-end tests take (20000 on) and the embedded system's defaults (18049 on).
PORT_PAIRS = range(16000, 18000, 2)


def _start_node(folder: Path, port: int) -> subprocess.Popen[bytes]:
    folder.mkdir()
    return subprocess.Popen(
        [
            "redis-server",
            "--port", str(port), "--cluster-port", str(port + 1), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
            "--save", "", "--appendonly", "no", "--dir", str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _wait_until(check: object, what: str) -> None:
    deadline = time.monotonic() + CLUSTER_DEADLINE_S
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"the Redis Cluster did not {what}")


def _answers(port: int) -> bool:
    probe = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
    return probe.stdout.strip() == "PONG"


def _cluster_ok(port: int) -> bool:
    info = subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True).stdout
    return "cluster_state:ok" in info


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        message = "no redis-server and redis-cli to start a Redis Cluster with"
        if os.environ.get("CARBON_REQUIRE_SERVICES") == "1":
            pytest.fail(f"CARBON_REQUIRE_SERVICES=1 but {message}", pytrace=False)
        pytest.skip(f"SKIPPED LOUDLY: {message}")
    folder = tmp_path_factory.mktemp("redis-cluster")
    ports = free_ports(MASTERS, PORT_PAIRS)
    nodes = [_start_node(folder / str(port), port) for port in ports]
    try:
        for port in ports:
            _wait_until(lambda port=port: _answers(port), f"start node {port}")
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{port}" for port in ports), *CREATE_OPTIONS],
            capture_output=True,
            text=True,
            timeout=CLUSTER_DEADLINE_S,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        _wait_until(lambda: all(_cluster_ok(port) for port in ports), "reach cluster_state:ok")
        yield f"redis://127.0.0.1:{ports[0]}/0?cluster=true"
    finally:
        for node in nodes:
            node.terminate()
        for node in nodes:
            node.wait(timeout=30)


@pytest.fixture
def cluster(cluster_url: str) -> Iterator[RedisCluster]:
    client = redis_client.connect(cluster_url)
    assert isinstance(client, RedisCluster)
    yield client
    client.flushall()
    client.close()


def test_the_url_chooses_a_cluster_client_and_is_passed_on_without_the_parameter() -> None:
    assert redis_client.cluster_url("redis://a:6379/0?cluster=true") == ("redis://a:6379/0", True)
    assert redis_client.cluster_url("redis://a:6379/0?cluster=0&ssl_cert_reqs=none") == (
        "redis://a:6379/0?ssl_cert_reqs=none",
        False,
    )
    assert not redis_client.is_cluster(redis_client.connect("redis://127.0.0.1:1/0"))


def test_the_cluster_has_three_masters_sharing_the_slots(cluster: RedisCluster) -> None:
    nodes = cluster.get_nodes()  # type: ignore[no-untyped-call]
    masters = [node for node in nodes if node.server_type == "primary"]
    assert len(masters) == MASTERS


def test_rate_limits_are_shared_by_two_replicas_through_the_cluster(cluster: RedisCluster) -> None:
    one, other = RedisLimiter(cluster, "t:"), RedisLimiter(cluster, "t:")
    now = 1_000.0
    allowed = [limiter.allow(f"caller-{n}", 1.0, 3, now_s=now) for n in range(20) for limiter in (one, other)]
    # Each caller's bucket holds 3: its first three takes from either replica pass, the fourth is refused.
    assert allowed.count(True) == 20 * 2 and all(one.allow(f"caller-{n}", 1.0, 3, now_s=now) for n in range(20))
    assert not any(other.allow(f"caller-{n}", 1.0, 3, now_s=now) for n in range(20))
    slots = {_slot(cluster, key) for key in cluster.scan_iter("t:rate:*")}
    assert len(slots) > 1, "the callers' buckets spread over the slots"


def test_the_dedupe_remembers_a_batch_on_one_slot_per_partner(cluster: RedisCluster) -> None:
    dedupe = RedisDedupe(cluster, "t:")
    days = [date(2026, 12, day) for day in range(1, 8)]
    for partner in ("bike-share", "metro", "power-grid"):
        dedupe.remember(partner, [(f"{partner}-e{n}", days[n % 7]) for n in range(50)])
    assert dedupe.seen("metro", [("metro-e3", days[3]), ("metro-e4", days[3]), ("metro-x", days[0])]) == {"metro-e3"}
    keys = list(cluster.scan_iter("t:seen:*"))
    assert len(keys) == 3 * 7
    by_partner: dict[str, set[int]] = {}
    for key in keys:
        partner = key.decode().split("{")[1].split("}")[0]
        by_partner.setdefault(partner, set()).add(_slot(cluster, key))
    assert all(len(slots) == 1 for slots in by_partner.values()), "a partner's days share its slot"


def _timeline(number: str) -> ConsentTimeline:
    granted = ConsentEvent(DataCategory.TRANSIT, ConsentAction.GRANT, datetime(2026, 1, 1, tzinfo=UTC), int(number))
    return ConsentTimeline(known=True, events=(granted,))


def test_the_consent_cache_fills_reads_and_invalidates_accounts_across_the_nodes(cluster: RedisCluster) -> None:
    cache = RedisConsentCache(cluster, "t:")
    numbers = [f"33000000000{n:05d}" for n in range(200)]
    hits, misses = cache.lookup(numbers)
    assert hits == {} and set(misses) == set(numbers) and set(misses.values()) == {0}
    cache.fill({number: _timeline(number) for number in numbers}, misses)
    hits, misses = cache.lookup(numbers)
    assert hits == {number: _timeline(number) for number in numbers} and misses == {}
    cache.invalidate(numbers[:10])
    hits, misses = cache.lookup(numbers)
    assert set(misses) == set(numbers[:10]) and set(misses.values()) == {1}
    # A fill that noted the old generation is dropped (the generation moved): still a miss.
    cache.fill({number: _timeline(number) for number in numbers[:10]}, dict.fromkeys(numbers[:10], 0))
    assert set(cache.lookup(numbers[:10])[1]) == set(numbers[:10])
    # Three masters own a third of the 16384 slots each (redis-cli's even split).
    thirds = {_slot(cluster, hash_tag(number)) * MASTERS // 16384 for number in numbers}
    assert len(thirds) == MASTERS, "the accounts live on every node"
