"""Service settings, read from environment variables once in main() (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class Secret:
    """A string that never prints: repr, str and logs show a placeholder."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int = 2**31) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


REGION_CODE_LENGTH = 6


@dataclass(frozen=True)
class Settings:
    """What a service needs to start. Defaults are safe for the embedded mode on one machine."""

    service: str
    region_code: str = "330000"
    host: str = "127.0.0.1"
    port: int = 0
    # SQLAlchemy URL; empty means a SQLite file under data_dir named after the service and region.
    database_url: str = ""
    # Empty means no Redis: in-process equivalents are used.
    redis_url: str = ""
    data_dir: Path = Path("data")
    migrate_on_start: bool = True
    max_workers: int = 16
    # Above this many in-flight RPCs new ones are refused (RESOURCE_EXHAUSTED), not queued forever.
    max_concurrent_rpcs: int = 256
    grace_period_s: int = 5
    log_level: str = "INFO"
    log_format: str = "json"
    # none | console | otlp
    telemetry_exporter: str = "none"
    otlp_endpoint: str = ""
    # This process's certificate and key (PEM): served on its port, and presented as its identity when it calls
    # others. With tls_ca_file set, peers are verified against it both ways: servers require client certificates.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_file: str = ""
    secrets: Mapping[str, Secret] = field(default_factory=dict)
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> Settings:
        """Reads CARBON_* variables. Raises SettingsError naming the variable that is wrong."""
        env = os.environ if env is None else env
        region = env.get("CARBON_REGION", "330000")
        if len(region) != REGION_CODE_LENGTH or not region.isdigit():
            raise SettingsError(f"CARBON_REGION must be a 6-digit GB/T 2260 region code, got {region!r}")
        exporter = env.get("CARBON_TELEMETRY", "none").lower()
        if exporter not in {"none", "console", "otlp"}:
            raise SettingsError(f"CARBON_TELEMETRY must be none, console or otlp, got {exporter!r}")
        log_format = env.get("CARBON_LOG_FORMAT", "json").lower()
        if log_format not in {"json", "text"}:
            raise SettingsError(f"CARBON_LOG_FORMAT must be json or text, got {log_format!r}")
        if bool(env.get("CARBON_TLS_CERT_FILE")) != bool(env.get("CARBON_TLS_KEY_FILE")):
            raise SettingsError("CARBON_TLS_CERT_FILE and CARBON_TLS_KEY_FILE must be set together")
        secrets = {
            key.removeprefix("CARBON_SECRET_").lower(): Secret(value)
            for key, value in env.items()
            if key.startswith("CARBON_SECRET_")
        }
        extra = {key: value for key, value in env.items() if key.startswith("CARBON_") and "SECRET" not in key}
        return cls(
            service=service,
            region_code=region,
            host=env.get("CARBON_HOST", "127.0.0.1"),
            port=_int(env, "CARBON_PORT", 0, 0, 65535),
            database_url=env.get("CARBON_DATABASE_URL", ""),
            redis_url=env.get("CARBON_REDIS_URL", ""),
            data_dir=Path(env.get("CARBON_DATA_DIR", "data")),
            migrate_on_start=env.get("CARBON_MIGRATE_ON_START", "1") not in {"0", "false", "no"},
            max_workers=_int(env, "CARBON_MAX_WORKERS", 16, 1, 1024),
            max_concurrent_rpcs=_int(env, "CARBON_MAX_CONCURRENT_RPCS", 256, 1, 100_000),
            grace_period_s=_int(env, "CARBON_GRACE_PERIOD_S", 5, 0, 600),
            log_level=env.get("CARBON_LOG_LEVEL", "INFO").upper(),
            log_format=log_format,
            telemetry_exporter=exporter,
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            tls_cert_file=env.get("CARBON_TLS_CERT_FILE", ""),
            tls_key_file=env.get("CARBON_TLS_KEY_FILE", ""),
            tls_ca_file=env.get("CARBON_TLS_CA_FILE", ""),
            secrets=secrets,
            extra=extra,
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def effective_database_url(self) -> str:
        """The configured URL, or the embedded default: a SQLite file per service and region."""
        if self.database_url:
            return self.database_url
        path = self.data_dir.resolve() / f"{self.service}-{self.region_code}.db"
        return f"sqlite:///{path}"

    def secret(self, name: str, default: str = "") -> Secret:
        """A named secret from CARBON_SECRET_<NAME>, e.g. secret("id_hmac_key")."""
        return self.secrets.get(name.lower(), Secret(default))
