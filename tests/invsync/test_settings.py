"""Settings load once, fail with the variable's name, and never print secrets."""

from __future__ import annotations

import pytest

from invsync.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in (
        "FINALE_ACCOUNT",
        "FINALE_API_KEY",
        "FINALE_API_SECRET",
        "FINALE_USERNAME",
        "FINALE_PASSWORD",
        "FINALE_TIMEZONE",
        "WAREHOUSE_URL",
        "FINALE_BASE_URL",
        "FINALE_RATE_LIMIT_PER_MINUTE",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_need_no_settings_for_the_embedded_warehouse() -> None:
    settings = load_settings()
    assert settings.warehouse_url.startswith("sqlite:///")
    assert settings.finale_rate_limit_per_minute == 120
    assert settings.finale_base_url == "https://app.finaleinventory.com"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        pytest.param({"FINALE_TIMEZONE": "Mars/Olympus"}, "FINALE_TIMEZONE", id="bad-zone"),
        pytest.param(
            {"FINALE_RATE_LIMIT_PER_MINUTE": "-1"},
            "FINALE_RATE_LIMIT_PER_MINUTE",
            id="negative-rate",
        ),
        pytest.param({"WAREHOUSE_URL": "mysql://x/y"}, "WAREHOUSE_URL", id="unsupported-db"),
        pytest.param({"FINALE_BASE_URL": "app.finale.test"}, "FINALE_BASE_URL", id="no-scheme"),
    ],
)
def test_malformed_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=names):
        load_settings()


def test_missing_account_and_credentials_name_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="FINALE_ACCOUNT"):
        load_settings().finale()
    monkeypatch.setenv("FINALE_ACCOUNT", "acme")
    with pytest.raises(ConfigError, match="FINALE_API_KEY and FINALE_API_SECRET"):
        load_settings().finale()


def test_secrets_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINALE_ACCOUNT", "acme")
    monkeypatch.setenv("FINALE_API_KEY", "key-1")
    monkeypatch.setenv("FINALE_API_SECRET", "s3cr3t-value")
    settings = load_settings()
    finale = settings.finale()
    assert finale.uses_basic_auth
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in repr(finale)
    assert finale.api_secret is not None
    assert finale.api_secret.get_secret_value() == "s3cr3t-value"
