import pytest

from service_kit.settings import Secret, Settings, SettingsError


def test_defaults_are_the_embedded_mode() -> None:
    settings = Settings.from_env("ledger_svc", {})
    assert settings.region_code == "330000"
    assert settings.redis_url == ""
    assert settings.telemetry_exporter == "none"
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
        },
    )
    assert (settings.region_code, settings.port) == ("110000", 50123)
    assert settings.effective_database_url() == "postgresql://db/identity"
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.extra["CARBON_LEDGER_ADDRESS"] == "127.0.0.1:50063"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CARBON_REGION", "33"), ("CARBON_PORT", "http"), ("CARBON_PORT", "70000"), ("CARBON_TELEMETRY", "jaeger")],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env("ledger_svc", {variable: value})


def test_secrets_never_print_and_stay_out_of_extra() -> None:
    settings = Settings.from_env("identity_svc", {"CARBON_SECRET_IDENTITY_HMAC_KEY": "k3y-material"})
    secret = settings.secret("identity_hmac_key")
    assert secret.reveal() == "k3y-material"
    assert "k3y-material" not in repr(settings) and "k3y-material" not in str(secret)
    assert all("SECRET" not in key for key in settings.extra)
    assert not Secret("")
