"""Settings from CARBON_* variables: defaults, overrides, errors that name the variable, secrets, service settings."""

from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import Field

from ops_api.settings import OpsSettings
from service_kit.settings import Secret, ServiceSettings, Settings, SettingsError, WholeNumber


def test_defaults_are_the_embedded_mode() -> None:
    settings = Settings.from_env("ledger_svc", {})
    assert settings.region_code == "330000"
    assert (settings.host, settings.port, settings.address) == ("127.0.0.1", 0, "127.0.0.1:0")
    assert settings.redis_url == ""
    assert settings.data_dir == Path("data")
    assert settings.migrate_on_start
    assert (settings.max_workers, settings.max_concurrent_rpcs, settings.grace_period_s) == (16, 256, 5)
    assert (settings.log_level, settings.log_format) == ("INFO", "json")
    assert (settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file) == ("", "", "")
    assert settings.effective_database_url().startswith("sqlite:///")
    assert settings.effective_database_url().endswith("ledger_svc-330000.db")


def test_environment_overrides_are_read() -> None:
    settings = Settings.from_env(
        "identity_svc",
        {
            "CARBON_REGION": "110000",
            "CARBON_PORT": "50123",
            "CARBON_DATABASE_URL": "postgresql://db/identity",
            "CARBON_REDIS_URL": "redis://cache:6379/0",
            "CARBON_LEDGER_ADDRESS": "127.0.0.1:50063",
            "CARBON_DATA_DIR": "/srv/carbon",
            "CARBON_MIGRATE_ON_START": "0",
            "CARBON_MAX_WORKERS": "4",
            "CARBON_LOG_LEVEL": "debug",
            "CARBON_LOG_FORMAT": "Text",
        },
    )
    assert (settings.region_code, settings.port) == ("110000", 50123)
    assert settings.effective_database_url() == "postgresql://db/identity"
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.data_dir == Path("/srv/carbon")
    assert not settings.migrate_on_start
    assert settings.max_workers == 4
    assert (settings.log_level, settings.log_format) == ("DEBUG", "text")
    assert settings.extra["CARBON_LEDGER_ADDRESS"] == "127.0.0.1:50063"


def test_an_empty_number_variable_keeps_the_default() -> None:
    settings = Settings.from_env("ledger_svc", {"CARBON_PORT": "", "CARBON_MAX_WORKERS": ""})
    assert (settings.port, settings.max_workers) == (0, 16)


@pytest.mark.parametrize(
    ("variable", "value", "explanation"),
    [
        ("CARBON_REGION", "33", "6-digit GB/T 2260 region code"),
        ("CARBON_REGION", "", "6-digit GB/T 2260 region code"),
        ("CARBON_PORT", "http", "valid integer"),
        ("CARBON_PORT", "70000", "less than or equal to 65535"),
        ("CARBON_MAX_WORKERS", "0", "greater than or equal to 1"),
        ("CARBON_LOG_FORMAT", "xml", "'json' or 'text'"),
        ("CARBON_MIGRATE_ON_START", "perhaps", "valid boolean"),
    ],
)
def test_a_bad_value_names_its_variable_what_it_must_be_and_what_it_got(
    variable: str, value: str, explanation: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env("ledger_svc", {variable: value})
    assert str(raised.value).startswith(f"{variable}: ")
    assert explanation in str(raised.value)
    assert f"(got {value!r})" in str(raised.value)


def test_every_bad_variable_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env("ledger_svc", {"CARBON_REGION": "UNSET", "CARBON_PORT": "x"})
    assert "CARBON_REGION" in str(raised.value) and "CARBON_PORT" in str(raised.value)


def test_a_certificate_without_its_key_is_refused() -> None:
    with pytest.raises(SettingsError, match="CARBON_TLS_CERT_FILE and CARBON_TLS_KEY_FILE must be set together"):
        Settings.from_env("ledger_svc", {"CARBON_TLS_CERT_FILE": "/etc/tls/ledger.pem"})


def test_secrets_never_print_and_stay_out_of_extra() -> None:
    settings = Settings.from_env("identity_svc", {"CARBON_SECRET_IDENTITY_HMAC_KEY": "k3y-material"})
    secret = settings.secret("identity_hmac_key")
    assert secret.reveal() == "k3y-material"
    assert "k3y-material" not in repr(settings) and "k3y-material" not in str(settings)
    assert "k3y-material" not in str(secret) and "k3y-material" not in repr(secret)
    assert all("SECRET" not in key for key in settings.extra)
    assert settings.secret("missing").reveal() == "" and settings.secret("missing", "fallback").reveal() == "fallback"
    assert not Secret("")
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")


def test_constructing_settings_reads_no_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBON_REGION", "110000")
    monkeypatch.setenv("CARBON_PORT", "not-a-number")
    settings = Settings(service="ledger_svc", max_workers=2)
    assert (settings.region_code, settings.port, settings.max_workers) == ("330000", 0, 2)
    with pytest.raises(SettingsError, match="CARBON_PORT"):  # from_env reads os.environ when given no mapping
        Settings.from_env("ledger_svc")


def test_settings_are_immutable() -> None:
    settings = Settings(service="ledger_svc")
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


class _ExampleSettings(ServiceSettings):
    service_package: ClassVar[str] = "ledger_svc"
    validity_months: WholeNumber = Field(default=24, validation_alias="CARBON_EXAMPLE_VALIDITY_MONTHS", ge=1)
    label: str = Field(default="plain", validation_alias="CARBON_EXAMPLE_LABEL")


def test_a_service_declares_its_own_typed_variables_on_top_of_the_shared_ones() -> None:
    own = _ExampleSettings.from_env({"CARBON_REGION": "310000", "CARBON_EXAMPLE_VALIDITY_MONTHS": "36"})
    assert (own.validity_months, own.label) == (36, "plain")
    assert (own.base.service, own.base.region_code) == ("ledger_svc", "310000")
    assert _ExampleSettings.from_env({}).validity_months == 24


def test_a_service_reads_its_variables_from_the_shared_settings_extra() -> None:
    base = Settings(service="ledger_svc", extra={"CARBON_EXAMPLE_LABEL": "from-extra"})
    assert _ExampleSettings.from_settings(base).label == "from-extra"


def test_a_bad_service_variable_names_itself() -> None:
    with pytest.raises(SettingsError, match=r"^CARBON_EXAMPLE_VALIDITY_MONTHS: .*greater than or equal to 1"):
        _ExampleSettings.from_env({"CARBON_EXAMPLE_VALIDITY_MONTHS": "0"})


def test_the_ops_api_settings_read_their_variables_and_the_shared_secrets() -> None:
    settings = OpsSettings.from_env(
        {
            "CARBON_REGION": "000000",
            "CARBON_REGISTRY_FILE": "/etc/carbon/registry.json",
            "CARBON_OPS_CALL_TIMEOUT_MS": "900",
            "CARBON_OPS_RATE_LIMIT_PER_MINUTE": "60",
            "CARBON_SECRET_COMMUNITY_PARTNER": "any-region",
            "CARBON_SECRET_COMMUNITY_PARTNER_330000": "zhejiang",
            "CARBON_SECRET_GATEWAY_API_KEY": "gateway",
        }
    )
    assert settings.base.service == "ops_api" and settings.base.region_code == "000000"
    assert settings.registry_file == Path("/etc/carbon/registry.json")
    assert (settings.call_timeout_ms, settings.rate_limit_per_minute) == (900, 60)
    assert settings.community_partner_secret("330000").reveal() == "zhejiang"
    assert settings.community_partner_secret("110000").reveal() == "any-region"
    assert settings.gateway_api_key().reveal() == "gateway"


def test_the_ops_api_defaults() -> None:
    settings = OpsSettings.from_env({"CARBON_REGISTRY_FILE": ""})
    assert settings.registry_file is None
    assert (settings.call_timeout_ms, settings.rate_limit_per_minute) == (5_000, 600)
    assert (settings.community_partner_id, settings.community_partner_key_id) == ("community-centre", "k1")
    assert settings.gateway_api_key().reveal() == ""


@pytest.mark.parametrize(
    ("variable", "value"), [("CARBON_OPS_CALL_TIMEOUT_MS", "50"), ("CARBON_OPS_RATE_LIMIT_PER_MINUTE", "many")]
)
def test_a_bad_ops_api_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}: "):
        OpsSettings.from_env({variable: value})
