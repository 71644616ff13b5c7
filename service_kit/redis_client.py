"""Redis clients for accelerators (caches, dedupe fast paths, rate limits): fail fast, never wait out an outage.

Redis is never the source of truth here, so a call that cannot reach it should fail at once and let the caller fall
back to the database or an in-process equivalent; redis-py's default retries with backoff would instead stall every
request for seconds during an outage.

A Redis Cluster is named by the URL: `redis://node:6379/0?cluster=true` (any node; the client finds the others).
In a cluster a command or script may only touch keys of one hash slot, so every key that is used together with
another carries the same hash tag (`hash_tag`): an account's consent entry and its generation, for instance.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

SOCKET_TIMEOUT_S = 0.5
CLUSTER_PARAMETER = "cluster"
_TRUE = {"1", "true", "yes"}

Client = redis.Redis | RedisCluster


def cluster_url(redis_url: str) -> tuple[str, bool]:
    """The URL without its `cluster` parameter, and whether that parameter asks for a cluster."""
    parts = urlsplit(redis_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    wanted = any(key == CLUSTER_PARAMETER and value.lower() in _TRUE for key, value in query)
    rest = urlencode([(key, value) for key, value in query if key != CLUSTER_PARAMETER])
    return urlunsplit(parts._replace(query=rest)), wanted


def connect(redis_url: str) -> Client:
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
    return isinstance(client, RedisCluster)


def hash_tag(part: str) -> str:
    """`{part}`: in a cluster, keys with the same tag share a hash slot (only the tag is hashed)."""
    return "{" + part + "}"
