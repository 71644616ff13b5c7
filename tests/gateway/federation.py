"""A federation of real processes for gateway tests: per region a ledger process and an identity server, a gateway.

The ledger is ledger_svc once it serves holds, else the durable stand-in ledger_double.py; either runs as its own
process so a test can kill -9 it. Ports come from tests/ports.py (below the ephemeral range, so a restarted process
gets its port back; each xdist worker its own share, so two workers never pick one port).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import Engine

from carbon.common.v1 import common_pb2
from carbon.gateway.v1 import gateway_service_pb2 as gw
from carbon.gateway.v1 import gateway_service_pb2_grpc
from carbon.identity.v1 import identity_service_pb2 as idpb
from carbon.identity.v1 import identity_service_pb2_grpc
from carbon.ingest.v1 import ingest_service_pb2_grpc
from carbon.ledger.v1 import ledger_service_pb2 as lpb
from carbon.ledger.v1 import ledger_service_pb2_grpc
from carbon.rewards.v1 import rewards_service_pb2_grpc
from gateway.domain.callers import key_digest_hex
from identity_svc.domain.real_name import id_check_char
from identity_svc.keys import KeyRing
from identity_svc.server import SERVICE_NAME as IDENTITY_SERVICE
from identity_svc.server import IdentityServiceServicer, build_services
from ingest_svc.server import registrations as ingest_registrations
from ledger_svc.server import registrations as ledger_registrations
from rewards_svc.server import registrations as rewards_registrations
from service_kit import health, identities
from service_kit.db import make_engine, migrate
from service_kit.runner import pool_size_for
from service_kit.server import Registration, RunningServer, start_server
from service_kit.settings import Settings
from service_kit.status import error_details
from service_kit.topology import RegionEntry, Registry
from tests.ingest.ingest_harness import OpeningClock
from tests.ports import free_port
from tests.schema_templates import migrated_here
from tests.service_identities import TRUST

ROOT = Path(__file__).resolve().parents[2]
DOUBLE = Path(__file__).with_name("ledger_double.py")
START_DEADLINE_S = 90
# A deadline against a hang for the harness's own set-up calls (opening, consent, earning, balances), not a
# measurement: on a loaded two-core machine an opening once took longer than 10 s.
HARNESS_CALL_DEADLINE_S = 30
KEYS = {
    "zj": "zj-platform-key",
    "bj": "bj-platform-key",
    "ops": "ops-key",
    "bj-alipay": "bj-alipay-key",
    "alipay": "alipay-national-key",
}
NATIONAL_KEY = b"n" * 32


def ledger_command(use_double: bool) -> list[str]:
    from ledger_svc import server as ledger_server

    built = getattr(ledger_server, "LedgerServiceServicer", None)
    real = built is not None and "Hold" in vars(built)
    return [sys.executable, "-m", "ledger_svc"] if real and not use_double else [sys.executable, str(DOUBLE)]


def wait_for(condition: Callable[[], Any], timeout_s: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def id_number(serial: int) -> str:
    first17 = f"330106199003{serial % 28 + 1:02d}{serial % 1000:03d}"
    return first17 + id_check_char(first17)


def resident_jwks(keys: dict[str, Ed25519PrivateKey]) -> dict[str, Any]:
    """The public JWKS of the regions' authorization keys, key id = the issuing identity service's SPIFFE ID."""
    return {
        "keys": [
            {
                **OKPAlgorithm.to_jwk(key.public_key(), as_dict=True),
                "kid": f"spiffe://carbon-account/region/{code}/identity",
            }
            for code, key in keys.items()
        ]
    }


def metadata(caller: str) -> tuple[tuple[str, str | bytes], ...]:
    return (("authorization", f"Bearer {KEYS[caller]}"),)


def refusal(call: object) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as caught:
        assert callable(call)
        call()
    details = error_details(caught.value)
    return details.code, details.reason, dict(details.metadata)


class Federation:
    def __init__(
        self,
        root: Path,
        regions: list[str],
        gateway_db_url: str = "",
        between_persons: bool = False,
        use_double: bool = False,
        ledger_db_urls: dict[str, str] | None = None,
        rewards: bool = False,
        ledgers_in_process: bool = False,
        ingest: bool = False,
    ) -> None:
        """use_double: run the ledger stand-in even when ledger_svc is built (it has crash hooks ledger_svc lacks).
        ledgers_in_process: serve each region's ledger_svc from this process (still on its own port) rather than as
        a `python -m ledger_svc` process, for tests that never kill -9 it: a process start costs more CPU than most
        of those tests (kill_ledger then stops the server at once, the region is down all the same)."""
        self.root = root
        self.use_double = use_double
        self.ledgers_in_process = ledgers_in_process and not use_double
        self.ledger_servers: dict[str, tuple[RunningServer, Engine]] = {}
        self.ledger_db_urls = ledger_db_urls or {code: f"sqlite:///{root / f'ledger-{code}.db'}" for code in regions}
        self.regions = regions
        self.gateway_db_url = gateway_db_url or f"sqlite:///{root / 'gateway.db'}"
        self.ledger_ports = {code: free_port() for code in regions}
        self.ledgers: dict[str, subprocess.Popen[bytes] | None] = {}
        self.identities: dict[str, RunningServer] = {}
        self.identity_ports: dict[str, int] = {}
        self.identity_clock = OpeningClock()
        self.gateway_proc: subprocess.Popen[bytes] | None = None
        self.gateway_port = free_port()
        self._serial = 0
        self._channels: dict[str, grpc.Channel] = {}
        self.registry_path = root / "registry.json"
        self.config_path = root / "gateway-config.json"
        self.rewards_servers: dict[str, RunningServer] = {}
        self.ingest_servers: dict[str, RunningServer] = {}
        self.partner_secret = ""  # the secret of a data partner a test registered with ingest
        # Each region's identity signs its residents' authorizations; the gateway verifies them with this JWKS.
        self.resident_keys = {code: Ed25519PrivateKey.generate() for code in regions}
        self.jwks_path = root / "resident-auth-jwks.json"
        self.jwks_path.write_text(json.dumps(resident_jwks(self.resident_keys)))
        for code in regions:
            self.start_identity(code)
            self.start_ledger(code)
            if rewards:
                self.start_rewards(code)
            if ingest:
                self.start_ingest(code)
        entries = [
            RegionEntry(
                code, code, code, f"127.0.0.1:{self.identity_ports[code]}", self.ingest_address(code),
                f"127.0.0.1:{self.ledger_ports[code]}", self.rewards_address(code),
            )
            for code in regions
        ]  # fmt: skip
        Registry(f"127.0.0.1:{self.gateway_port}", entries).save(self.registry_path)
        self.config_path.write_text(
            json.dumps(
                {
                    "callers": [
                        {"id": "zj", "region": "330000", "role": "platform", "key_sha256": key_digest_hex(KEYS["zj"])},
                        {"id": "bj", "region": "110000", "role": "platform", "key_sha256": key_digest_hex(KEYS["bj"])},
                        {
                            "id": "bj-alipay",
                            "region": "110000",
                            "role": "platform",
                            "platform": "alipay",
                            "key_sha256": key_digest_hex(KEYS["bj-alipay"]),
                        },
                        {
                            "id": "alipay",
                            "regions": ["*"],
                            "role": "platform",
                            "platform": "alipay",
                            "keys": [{"sha256": key_digest_hex(KEYS["alipay"])}],
                        },
                        {
                            "id": "ops",
                            "region": "000000",
                            "role": "operator",
                            "key_sha256": key_digest_hex(KEYS["ops"]),
                        },
                    ],
                    "policies": {code: {"transfers_between_persons": between_persons} for code in regions},
                }
            )
        )

    # --- processes ---
    def start_identity(self, code: str) -> None:
        # Identity judges a guardian of another region through the gateway (ADR 0209).
        gateway = {"CARBON_GATEWAY_ADDRESS": f"127.0.0.1:{self.gateway_port}"}
        settings = TRUST.server(
            Settings(service="identity_svc", region_code=code, port=self.identity_ports.get(code, 0), extra=gateway)
        )
        engine = make_engine(f"sqlite:///{self.root / f'identity-{code}.db'}")
        migrate("identity_svc", engine)
        keys = KeyRing(b"h" * 32, NATIONAL_KEY, {"k1": b"k" * 32}, "k1")
        servicer = IdentityServiceServicer(build_services(settings, engine, keys=keys, clock=self.identity_clock))
        registration = Registration(
            identity_service_pb2_grpc.add_IdentityServiceServicer_to_server, servicer, IDENTITY_SERVICE
        )
        running = start_server(settings, [registration])
        self.identities[code] = running
        self.identity_ports[code] = running.port

    def start_rewards(self, code: str) -> None:
        """rewards_svc in-process, spending through the region's ledger process."""
        settings = TRUST.server(
            Settings(
                service="rewards_svc",
                region_code=code,
                extra={
                    "CARBON_LEDGER_ADDRESS": f"127.0.0.1:{self.ledger_ports[code]}",
                    "CARBON_RECOVERY_INTERVAL_S": "60",
                },
            )
        )
        engine = make_engine(f"sqlite:///{self.root / f'rewards-{code}.db'}")
        migrate("rewards_svc", engine)
        self.rewards_servers[code] = start_server(settings, rewards_registrations(settings, engine))

    def start_ingest(self, code: str) -> None:
        """ingest_svc in-process, over the region's identity and ledger, on the system clock."""
        settings = TRUST.server(
            Settings(
                service="ingest_svc",
                region_code=code,
                extra={
                    "CARBON_IDENTITY_ADDRESS": f"127.0.0.1:{self.identity_ports[code]}",
                    "CARBON_LEDGER_ADDRESS": f"127.0.0.1:{self.ledger_ports[code]}",
                    "CARBON_INGEST_RESUME_ON_START": "0",
                },
            )
        )
        engine = make_engine(f"sqlite:///{self.root / f'ingest-{code}.db'}")
        migrate("ingest_svc", engine)
        self.ingest_servers[code] = start_server(settings, ingest_registrations(settings, engine))

    def ingest_address(self, code: str) -> str:
        running = self.ingest_servers.get(code)
        return running.address if running else "127.0.0.1:1"

    def ingest(self, code: str) -> ingest_service_pb2_grpc.IngestServiceStub:
        return ingest_service_pb2_grpc.IngestServiceStub(self._channel(self.ingest_address(code)))

    def rewards_address(self, code: str) -> str:
        running = self.rewards_servers.get(code)
        return running.address if running else "127.0.0.1:1"

    def rewards(self, code: str) -> rewards_service_pb2_grpc.RewardsServiceStub:
        return rewards_service_pb2_grpc.RewardsServiceStub(self._channel(self.rewards_address(code)))

    def stop_identity(self, code: str) -> None:
        self.identities[code].stop()

    def _env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARBON_")}
        env.update({"CARBON_LOG_LEVEL": "WARNING", "CARBON_GRACE_PERIOD_S": "0", "PYTHONPATH": str(ROOT)})
        env.update(extra)
        return env

    def _ledger_variables(self, code: str, crash_at: str) -> dict[str, str]:
        return {
            "CARBON_PORT": str(self.ledger_ports[code]),
            "CARBON_REGION": code,
            "CARBON_DATABASE_URL": self.ledger_db_urls[code],
            "CARBON_DATA_DIR": str(self.root),
            "CARBON_TEST_CRASH_AT": crash_at,
            **TRUST.env(identities.regional(code, "ledger")),
        }

    def start_ledger(self, code: str, crash_at: str = "") -> None:
        if self.ledgers_in_process and not crash_at:
            self._start_ledger_in_process(code)
            return
        if not self.use_double:
            migrated_here("ledger_svc", self.ledger_db_urls[code])
        env = self._env(**self._ledger_variables(code, crash_at))
        log = (self.root / f"ledger-{code}.log").open("ab")
        self.ledgers[code] = subprocess.Popen(
            ledger_command(self.use_double), env=env, cwd=ROOT, stdout=log, stderr=log
        )
        address = f"127.0.0.1:{self.ledger_ports[code]}"
        # A deadline against a hang: on a loaded CI machine a restarted process can take well over 20 s to serve.
        wait_for(
            lambda: health.check(address, timeout_s=0.5) == "SERVING" or self._exited(code),
            timeout_s=START_DEADLINE_S,
            what=f"ledger {code}",
        )
        assert not self._exited(code), f"ledger {code} exited: see {self.root / f'ledger-{code}.log'}"

    def _start_ledger_in_process(self, code: str) -> None:
        """The ledger as `python -m ledger_svc` runs it (settings, pool size, migration, registrations), in-process."""
        settings = Settings.from_env("ledger_svc", self._ledger_variables(code, ""))
        engine = make_engine(settings.effective_database_url(), pool_size=pool_size_for(settings))
        migrate("ledger_svc", engine)
        self.ledger_servers[code] = (start_server(settings, ledger_registrations(settings, engine)), engine)
        self.ledgers[code] = None

    def _exited(self, code: str) -> bool:
        process = self.ledgers.get(code)
        return process is not None and process.poll() is not None

    def kill_ledger(self, code: str) -> None:
        if code in self.ledger_servers:
            running, engine = self.ledger_servers.pop(code)
            running.stop()
            engine.dispose()
            return
        process = self.ledgers[code]
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)

    def start_gateway(self, crash_at: str = "", **extra: str) -> None:
        migrated_here("gateway", self.gateway_db_url)
        env = self._env(
            CARBON_PORT=str(self.gateway_port),
            CARBON_DATABASE_URL=self.gateway_db_url,
            CARBON_REGISTRY_FILE=str(self.registry_path),
            CARBON_GATEWAY_CONFIG=str(self.config_path),
            CARBON_RESIDENT_AUTH_JWKS_FILE=str(self.jwks_path),
            CARBON_GATEWAY_RECOVERY_INTERVAL_MS="100",
            CARBON_GATEWAY_RETRY_MAX_MS="300",
            CARBON_GATEWAY_CALL_TIMEOUT_MS="1000",
            CARBON_GATEWAY_MARGIN_MS="200",
            CARBON_TEST_CRASH_AT=crash_at,
            **TRUST.env(identities.GATEWAY),
        )
        env.update(extra)
        log = (self.root / "gateway.log").open("ab")
        self.gateway_proc = subprocess.Popen(
            [sys.executable, "-m", "gateway"], env=env, cwd=ROOT, stdout=log, stderr=log
        )
        address = f"127.0.0.1:{self.gateway_port}"
        wait_for(lambda: health.check(address, timeout_s=0.5) == "SERVING", timeout_s=START_DEADLINE_S, what="gateway")

    def wait_gateway_exit(self) -> int:
        assert self.gateway_proc is not None
        return self.gateway_proc.wait(20)

    def kill_gateway(self) -> None:
        if self.gateway_proc is not None and self.gateway_proc.poll() is None:
            self.gateway_proc.send_signal(signal.SIGKILL)
            self.gateway_proc.wait(10)

    def close(self) -> None:
        self.kill_gateway()
        for code in self.regions:
            self.kill_ledger(code)
            self.identities[code].stop()
        for running in (*self.rewards_servers.values(), *self.ingest_servers.values()):
            running.stop()
        for channel in self._channels.values():
            channel.close()

    # --- clients ---
    def _channel(self, address: str) -> grpc.Channel:
        if address not in self._channels:
            self._channels[address] = TRUST.allowed_channel(address)
        return self._channels[address]

    def gateway_channel(self) -> grpc.Channel:
        return self._channel(f"127.0.0.1:{self.gateway_port}")

    def gateway(self, address: str = "") -> gateway_service_pb2_grpc.GatewayServiceStub:
        return gateway_service_pb2_grpc.GatewayServiceStub(self._channel(address or f"127.0.0.1:{self.gateway_port}"))

    def identity(self, code: str) -> identity_service_pb2_grpc.IdentityServiceStub:
        return identity_service_pb2_grpc.IdentityServiceStub(self._channel(f"127.0.0.1:{self.identity_ports[code]}"))

    def ledger(self, code: str) -> ledger_service_pb2_grpc.LedgerServiceStub:
        return ledger_service_pb2_grpc.LedgerServiceStub(self._channel(f"127.0.0.1:{self.ledger_ports[code]}"))

    def open_account(
        self,
        code: str,
        person: int | None = None,
        sharing: bool = True,
        opened_at: datetime | None = None,
        name: str = "张三",
    ) -> str:
        """An account of a new person (or of `person`), consenting to cross-region sharing unless `sharing` is off;
        opened at `opened_at` when given (no consent may take effect before the opening)."""
        self._serial += 1
        self.identity_clock.opening_at = opened_at
        person = self._serial if person is None else person
        stub = identity_service_pb2_grpc.IdentityServiceStub(self._channel(f"127.0.0.1:{self.identity_ports[code]}"))
        response = stub.OpenAccount(
            idpb.OpenAccountRequest(
                request_id=f"open-{code}-{self._serial}",
                channel=common_pb2.CHANNEL_INTERNET_PLATFORM,
                name=name,
                id_number=id_number(person),
                phone_number=f"138{person:08d}",
                binding=common_pb2.ChannelBinding(platform="alipay", platform_user_id=f"u{code}{self._serial}"),
            ),
            timeout=HARNESS_CALL_DEADLINE_S,
        )
        self.identity_clock.opening_at = None
        number = str(response.account.account_number)
        if sharing:
            self.consent_to_sharing(number)
        return number

    def consent_to_sharing(self, account: str, grant: bool = True) -> None:
        """Grants (or revokes) the account's consent to cross-region sharing in its home region (ADR 0610)."""
        stub = identity_service_pb2_grpc.IdentityServiceStub(
            self._channel(f"127.0.0.1:{self.identity_ports[account[:6]]}")
        )
        self._serial += 1
        request_id = f"sharing-{account}-{self._serial}"
        sharing, via = common_pb2.DATA_CATEGORY_CROSS_REGION_SHARING, common_pb2.CHANNEL_INTERNET_PLATFORM
        if grant:
            stub.GrantConsent(
                idpb.GrantConsentRequest(
                    request_id=request_id, account_number=account, category=sharing, channel=via, recorded_by="alipay"
                ),
                timeout=HARNESS_CALL_DEADLINE_S,
            )
        else:
            stub.RevokeConsent(
                idpb.RevokeConsentRequest(
                    request_id=request_id, account_number=account, category=sharing, channel=via, recorded_by="alipay"
                ),
                timeout=HARNESS_CALL_DEADLINE_S,
            )

    def open_person(self, codes: list[str], name: str = "张三", opened_at: datetime | None = None) -> list[str]:
        """One person (one ID number) opens an account in each of `codes`: identity gives them one person key."""
        self._serial += 1
        person = self._serial
        return [self.open_account(code, person, name=name, opened_at=opened_at) for code in codes]

    def earn(self, code: str, account: str, points: int, earned_at: datetime | None = None) -> None:
        self._serial += 1
        transfer = lpb.Transfer(
            transfer_id=f"earn-{self._serial}-{account}", debit_account="system:issuance", credit_account=account,
            amount_points=points, code=lpb.TRANSFER_CODE_EARN,
        )  # fmt: skip
        if earned_at is not None:
            transfer.earned_at.FromDatetime(earned_at)
        result = (
            self.ledger(code)
            .PostTransfers(lpb.PostTransfersRequest(transfers=[transfer]), timeout=HARNESS_CALL_DEADLINE_S)
            .results[0]
        )
        assert result.status == lpb.TRANSFER_STATUS_POSTED, result

    def spend(self, code: str, account: str, points: int) -> None:
        self._serial += 1
        transfer = lpb.Transfer(
            transfer_id=f"spend-{self._serial}", debit_account=account, credit_account="system:redemption",
            amount_points=points, code=lpb.TRANSFER_CODE_REDEEM,
        )  # fmt: skip
        result = (
            self.ledger(code)
            .PostTransfers(lpb.PostTransfersRequest(transfers=[transfer]), timeout=HARNESS_CALL_DEADLINE_S)
            .results[0]
        )
        assert result.status == lpb.TRANSFER_STATUS_POSTED, result

    def balance(self, code: str, account: str) -> lpb.Balance:
        return (
            self.ledger(code)
            .GetBalance(lpb.GetBalanceRequest(account=account), timeout=HARNESS_CALL_DEADLINE_S)
            .balance
        )

    def conserved(self, code: str) -> bool:
        return bool(
            self.ledger(code)
            .CheckConservation(lpb.CheckConservationRequest(), timeout=HARNESS_CALL_DEADLINE_S)
            .balanced
        )

    def clearing_sum(self) -> int:
        return sum(self.balance(code, "system:clearing").total_points for code in self.regions)

    def authorize(
        self, operation: str, account: str, to_account: str, request_id: str, points: int, **extra: Any
    ) -> str:
        """The resident's authorization as their region's identity issues it (IssueResidentAuthorization's claims),
        through the resident's platform unless `act` names counter staff."""
        now = int(time.time())
        issuer = f"spiffe://carbon-account/region/{account[:6]}/identity"
        claims: dict[str, Any] = {
            "iss": issuer, "aud": "carbon-account/gateway", "sub": account, "op": operation, "amount_points": points,
            "to_account": to_account, "request_id": request_id, "iat": now, "exp": now + 300,
            "jti": f"{request_id}-{now}", **({"platform": "alipay"} if "act" not in extra else {}), **extra,
        }  # fmt: skip
        return jwt.encode(claims, self.resident_keys[account[:6]], algorithm="EdDSA", headers={"kid": issuer})

    def transfer(self, transfer_id: str, from_account: str, to_account: str, points: int, caller: str = "zj") -> Any:
        request = gw.CreateCrossRegionTransferRequest(
            transfer_id=transfer_id,
            from_account=from_account,
            to_account=to_account,
            amount_points=points,
            resident_authorization=self.authorize(
                "cross_region_transfer", from_account, to_account, transfer_id, points
            ),
        )
        return self.gateway().CreateCrossRegionTransfer(request, metadata=metadata(caller), timeout=30).transfer

    def get_transfer(self, transfer_id: str, caller: str = "ops") -> Any:
        request = gw.GetCrossRegionTransferRequest(transfer_id=transfer_id)
        return self.gateway().GetCrossRegionTransfer(request, metadata=metadata(caller), timeout=10).transfer
