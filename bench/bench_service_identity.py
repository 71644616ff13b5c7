"""What proving and checking service identities costs per call (ADR 0011).

Three figures: signing a token afresh vs re-using the minted one; verifying a token afresh vs the verifier's cache;
and a unary call through a real server that authenticates and authorizes it (token channel) vs the same server
leaving access to someone else (the gateway's mode) and a plain channel, same process, same handler. Client and
server share the process, so its CPU time per call is the work of both sides, a figure the other processes on a
shared machine disturb far less than wall-clock rates. Nothing touches a database. Last line: one JSON object with
the figures and "ratio" (CPU per call without identity / with: the throughput left on a CPU-bound path).
"""

from __future__ import annotations

import json
import os
import time
import timeit
from collections.abc import Callable

import bench_trust_support  # type: ignore[import-not-found,unused-ignore]
import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service_kit import identities
from service_kit.identities import TokenMinter, TokenVerifier, TrustBundle, mint
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import Settings

CALLS = int(os.environ.get("CARBON_BENCH_CALLS", "3000"))
METHOD = "/carbon.ledger.v1.LedgerService/GetBalance"


def _per_call_us(action: Callable[[], object], number: int) -> float:
    return timeit.timeit(action, number=number) / number * 1e6


def token_costs() -> dict[str, float]:
    key = Ed25519PrivateKey.generate()
    minter = TokenMinter(identities.GATEWAY, key)
    verifier = TokenVerifier(TrustBundle({identities.GATEWAY: key.public_key()}))
    token = minter.token()
    verifier.verify(token)
    return {
        "sign_us": _per_call_us(lambda: mint(identities.GATEWAY, key, time.time(), 300), 2_000),
        "reuse_us": _per_call_us(minter.token, 200_000),
        "verify_us": _per_call_us(lambda: verifier._check(token), 2_000),
        "verify_cached_us": _per_call_us(lambda: verifier.verify(token), 200_000),
    }


def _serve(settings: Settings) -> RunningServer:
    handler = grpc.method_handlers_generic_handler(
        "carbon.ledger.v1.LedgerService", {"GetBalance": grpc.unary_unary_rpc_method_handler(lambda _r, _c: b"")}
    )
    registration = Registration(
        lambda _servicer, server: server.add_generic_rpc_handlers((handler,)), None, "carbon.ledger.v1.LedgerService"
    )
    return start_server(settings, [registration])


def _cpu_us_per_call(channel: grpc.Channel) -> float:
    call = channel.unary_unary(METHOD, None, None)
    for _ in range(200):  # connected and warm
        call(b"", timeout=5)
    started = time.process_time()
    for _ in range(CALLS):
        call(b"", timeout=5)
    return (time.process_time() - started) / CALLS * 1e6


def unary_cpu() -> tuple[float, float]:
    """CPU microseconds per call (client and server together), with identity and without; best of three."""
    checked = _serve(bench_trust_support.server(Settings(service="ledger_svc", region_code="330000")))
    unchecked = _serve(Settings(service="gateway", region_code="000000"))
    try:
        with_identity, without = [], []
        for _ in range(3):  # interleaved
            with grpc.insecure_channel(unchecked.address) as plain:
                without.append(_cpu_us_per_call(plain))
            with bench_trust_support.channel(checked.address, identities.GATEWAY) as proving:
                with_identity.append(_cpu_us_per_call(proving))
    finally:
        checked.stop()
        unchecked.stop()
    return min(with_identity), min(without)


def main() -> None:
    costs = token_costs()
    with_identity, without = unary_cpu()
    print(f"sign a token     {costs['sign_us']:8.1f} us   re-use the minted one {costs['reuse_us']:6.2f} us")
    print(f"verify a token   {costs['verify_us']:8.1f} us   from the cache        {costs['verify_cached_us']:6.2f} us")
    print(f"a unary call     {with_identity:8.0f} us of CPU with identity, {without:.0f} us without (both sides)")
    figures = {"unary_cpu_us_with_identity": with_identity, "unary_cpu_us_without": without, **costs}
    print(json.dumps({"bench": "service_identity", **figures, "ratio": without / with_identity}))


if __name__ == "__main__":
    main()
