"""Redis clients for accelerators (caches, dedupe fast paths, rate limits): fail fast, never wait out an outage.

Redis is never the source of truth here, so a call that cannot reach it should fail at once and let the caller fall
back to the database or an in-process equivalent; redis-py's default retries with backoff would instead stall every
request for seconds during an outage.

A Redis Cluster is named by the URL: `redis://node:6379/0?cluster=true` (any node; the client finds the others).
In a cluster a command or script may only touch keys of one hash slot, so every key that is used together with
another carries the same hash tag (`hash_tag`): an account's consent entry and its generation, for instance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from redis import Redis
    from redis import RedisError as RedisError  # at run time through __getattr__ below
    from redis.cluster import RedisCluster

    Client: TypeAlias = Redis | RedisCluster

SOCKET_TIMEOUT_S = 0.5
CLUSTER_PARAMETER = "cluster"
_TRUE = {"1", "true", "yes"}


def __getattr__(name: str) -> Any:
    """`redis_client.RedisError` (what the accelerators catch), imported only when first asked for: redis-py is
    imported when a service connects to Redis, not by every process that could (a service on its own, as `carbon
    up` runs them, never does), since its import is a noticeable part of a process start (ADR 0024)."""
    if name == "RedisError":
        from redis import RedisError

        return RedisError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cluster_url(redis_url: str) -> tuple[str, bool]:
    """The URL without its `cluster` parameter, and whether that parameter asks for a cluster."""
    parts = urlsplit(redis_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    wanted = any(key == CLUSTER_PARAMETER and value.lower() in _TRUE for key, value in query)
    rest = urlencode([(key, value) for key, value in query if key != CLUSTER_PARAMETER])
    return urlunsplit(parts._replace(query=rest)), wanted


def connect(redis_url: str) -> Client:
    import redis
    from redis.backoff import NoBackoff
    from redis.cluster import RedisCluster
    from redis.retry import Retry

    url, cluster = cluster_url(redis_url)
    if cluster:
        # Redirections (MOVED, ASK) are part of how a cluster works and are still followed; a node that does not
        # answer is not retried.
        return RedisCluster.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )


def is_cluster(client: Client) -> bool:
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster)


def hash_tag(part: str) -> str:
    """`{part}`: in a cluster, keys with the same tag share a hash slot (only the tag is hashed)."""
    return "{" + part + "}"
