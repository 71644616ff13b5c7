"""Service settings: typed fields read from CARBON_* environment variables once in main() (never at import).

pydantic-settings parses and checks the values; every field that comes from the environment names its variable
(`validation_alias`), so that name is what an error message shows. `Settings` holds what every service reads; a
service that has variables of its own declares them on a `ServiceSettings` subclass, which carries the shared
settings as `base`. docs/adr/0010-settings-on-pydantic-settings.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from service_kit.clock import parse_offset
from service_kit.identities import identity_of_service

REGION_CODE_LENGTH = 6
SECRET_PREFIX = "CARBON_SECRET_"


class Secret(SecretStr):
    """A string that never prints: repr, str and logs show a placeholder; reveal() gives the value."""

    def reveal(self) -> str:
        return self.get_secret_value()


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use; the message names the variable."""


def _empty_means_default(value: object) -> object:
    if value == "":
        raise PydanticUseDefault
    return value


# A variable set to the empty string counts as unset: the field keeps its default (e.g. CARBON_PORT=).
EmptyIsUnset = BeforeValidator(_empty_means_default)
WholeNumber = Annotated[int, EmptyIsUnset]


class _Variables(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ in main(), a dict in tests).

    Only fields that name their variable are read; the others (the service's name, secrets, extra, base) are
    handed over by from_env.
    """

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str]) -> None:
        self._variables = variables
        super().__init__(settings_cls, case_sensitive=True, env_prefix="")

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The one hook where EnvSettingsSource takes os.environ; everything else (aliases, parsing) is the library's.
        return dict(self._variables)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if not isinstance(field.validation_alias, str):
            return None, field_name, False
        return super().get_field_value(field, field_name)


def _explain(error: ValidationError) -> str:
    """One line per problem, the variable first, in words a person can act on."""
    lines = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(part) for part in problem["loc"])
        reason = str(problem["ctx"]["error"]) if problem["type"] == "value_error" else problem["msg"]
        if not where:
            lines.append(reason)
            continue
        lines.append(f"{where}: {reason[:1].lower()}{reason[1:]} (got {problem['input']!r})")
    return "; ".join(lines)


S = TypeVar("S", bound=BaseSettings)


def _read(cls: type[S], variables: Mapping[str, str], **given: Any) -> S:
    """Builds `cls` from the variables its fields name plus the values given; SettingsError if any is wrong."""
    try:
        return cls(**{**_Variables(cls, variables)(), **given})
    except ValidationError as error:
        raise SettingsError(_explain(error)) from None
    except SourceError as error:
        raise SettingsError(str(error)) from None


class _FromArguments(BaseSettings):
    """Settings classes built from their arguments only: the environment is read by from_env, never implicitly, so a
    test that constructs settings gets exactly what it wrote whatever the machine's variables."""

    model_config = SettingsConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class Settings(_FromArguments):
    """What a service needs to start. Defaults are safe for the embedded mode on one machine."""

    service: str
    region_code: str = Field(default="330000", validation_alias="CARBON_REGION")
    host: str = Field(default="127.0.0.1", validation_alias="CARBON_HOST")
    port: WholeNumber = Field(default=0, validation_alias="CARBON_PORT", ge=0, le=65535)
    # SQLAlchemy URL; empty means a SQLite file under data_dir named after the service and region.
    database_url: str = Field(default="", validation_alias="CARBON_DATABASE_URL")
    # Empty means no Redis: in-process equivalents are used.
    redis_url: str = Field(default="", validation_alias="CARBON_REDIS_URL")
    data_dir: Path = Field(default=Path("data"), validation_alias="CARBON_DATA_DIR")
    migrate_on_start: bool = Field(default=True, validation_alias="CARBON_MIGRATE_ON_START")
    max_workers: WholeNumber = Field(default=16, validation_alias="CARBON_MAX_WORKERS", ge=1, le=1024)
    # Above this many in-flight RPCs new ones are refused (RESOURCE_EXHAUSTED), not queued forever.
    max_concurrent_rpcs: WholeNumber = Field(
        default=256, validation_alias="CARBON_MAX_CONCURRENT_RPCS", ge=1, le=100_000
    )
    grace_period_s: WholeNumber = Field(default=5, validation_alias="CARBON_GRACE_PERIOD_S", ge=0, le=600)
    log_level: str = Field(default="INFO", validation_alias="CARBON_LOG_LEVEL")
    log_format: Literal["json", "text"] = Field(default="json", validation_alias="CARBON_LOG_FORMAT")
    # Telemetry is configured by OpenTelemetry's own OTEL_* variables (service_kit/telemetry.py), not here.
    # This process's certificate and key (PEM): served on its port, and presented as its identity when it calls
    # others. With tls_ca_file set, peers are verified against it both ways: servers require client certificates.
    tls_cert_file: str = Field(default="", validation_alias="CARBON_TLS_CERT_FILE")
    tls_key_file: str = Field(default="", validation_alias="CARBON_TLS_KEY_FILE")
    tls_ca_file: str = Field(default="", validation_alias="CARBON_TLS_CA_FILE")
    # Who this process is (a SPIFFE ID, service_kit/identities.py); empty means the ID its service and region give.
    service_identity: str = Field(default="", validation_alias="CARBON_SERVICE_IDENTITY")
    # This process's Ed25519 private key (PEM): it signs the token that proves its identity to the services it calls.
    service_key_file: str = Field(default="", validation_alias="CARBON_SERVICE_KEY_FILE")
    # The trust bundle (JSON, SPIFFE ID -> public key) the tokens of callers are verified against. Without it (and
    # without mTLS) a regional service refuses every call but health checks: it cannot tell who is calling.
    trust_bundle_file: str = Field(default="", validation_alias="CARBON_TRUST_BUNDLE_FILE")
    # Where this deployment runs; production refuses a rehearsal clock.
    environment: Literal["development", "staging", "production"] = Field(
        default="development", validation_alias="CARBON_ENVIRONMENT"
    )
    # The rehearsal clock's shift of the whole system's time, e.g. "+730d" (service_kit/clock.py; ADR 0015).
    clock_offset: timedelta = Field(default=timedelta(0), validation_alias="CARBON_CLOCK_OFFSET")
    # CARBON_SECRET_<NAME> by lower-case name; read them with secret(name).
    secrets: Mapping[str, Secret] = Field(default_factory=dict)
    # Every other CARBON_* variable (secrets excepted), for what a service reads beyond these fields.
    extra: Mapping[str, str] = Field(default_factory=dict)

    @field_validator("region_code")
    @classmethod
    def _is_a_region_code(cls, value: str) -> str:
        if len(value) != REGION_CODE_LENGTH or not value.isdigit():
            raise ValueError("must be a 6-digit GB/T 2260 region code")
        return value

    @field_validator("log_level")
    @classmethod
    def _upper_case(cls, value: str) -> str:
        return value.upper()

    @field_validator("clock_offset", mode="before")
    @classmethod
    def _offset_text(cls, value: object) -> object:
        return parse_offset(value) if isinstance(value, str) else value

    @field_validator("log_format", "environment", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _no_rehearsal_in_production(self) -> Self:
        if self.clock_offset and self.environment == "production":
            raise ValueError("CARBON_CLOCK_OFFSET (a rehearsal clock) is refused when CARBON_ENVIRONMENT=production")
        return self

    @model_validator(mode="after")
    def _certificate_comes_with_its_key(self) -> Self:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("CARBON_TLS_CERT_FILE and CARBON_TLS_KEY_FILE must be set together")
        return self

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> Self:
        """Reads CARBON_* variables (os.environ unless given). Raises SettingsError naming the variable that is
        wrong."""
        env = os.environ if env is None else env
        secrets = {
            key.removeprefix(SECRET_PREFIX).lower(): Secret(value)
            for key, value in env.items()
            if key.startswith(SECRET_PREFIX)
        }
        extra = {key: value for key, value in env.items() if key.startswith("CARBON_") and "SECRET" not in key}
        return _read(cls, env, service=service, secrets=secrets, extra=extra)

    @property
    def identity(self) -> str:
        """This process's SPIFFE ID: the configured one, else the one its service and region give ("" if none)."""
        return self.service_identity or identity_of_service(self.service, self.region_code)

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


class ServiceSettings(_FromArguments):
    """A service's own variables on top of the shared ones (carried as `base`). Subclass it, set `service_package`,
    and declare each variable as a typed field whose `validation_alias` is the variable's name (ops_api/settings.py
    and docs/adding-a-service.md show one). Read it with `from_env()` in main(), or `from_settings(settings)` where
    only the shared settings are at hand: their `extra` holds every other CARBON_* variable.
    """

    service_package: ClassVar[str]
    base: Settings

    @classmethod
    def from_settings(cls, base: Settings) -> Self:
        return _read(cls, base.extra, base=base)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        return cls.from_settings(Settings.from_env(cls.service_package, env))
