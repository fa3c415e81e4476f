"""Settings: a missing or malformed variable is named; secrets never print."""

from __future__ import annotations

import pytest

from connectors.supabase import (
    AppTable,
    InvalidRequestError,
    Kind,
    MissingSettingError,
    PostgresReader,
    RestReader,
    SupabaseSettings,
    open_reader,
)
from invsync.settings import ConfigError, Settings, load_settings

KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.s3cr3tSignatureValue0123456789"
DB_URL = "postgresql://postgres:Hunter2-db-pass@db.example.supabase.co:5432/postgres"


def _settings(**values: object) -> Settings:
    # _env_file=None: a developer's .env must not leak into these tests.
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("values", "path", "named"),
    [
        pytest.param({}, None, "SUPABASE_DB_URL", id="nothing"),
        pytest.param(
            {"supabase_url": "https://x.supabase.co"},
            None,
            "SUPABASE_SERVICE_ROLE_KEY",
            id="url-without-key",
        ),
        pytest.param({"supabase_service_role_key": KEY}, None, "SUPABASE_URL", id="key-only"),
        pytest.param(
            {"supabase_service_role_key": KEY, "supabase_url": "https://x.supabase.co"},
            "postgres",
            "SUPABASE_DB_URL",
            id="postgres-path",
        ),
        pytest.param(
            {"supabase_db_url": DB_URL}, "rest", "SUPABASE_URL and SUPABASE_SERVICE", id="rest-path"
        ),
    ],
)
def test_a_missing_setting_is_named(
    values: dict[str, object], path: str | None, named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        _settings(**values).supabase(path)  # type: ignore[arg-type]


def test_settings_build_the_connector_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUPABASE_DB_URL", DB_URL)
    monkeypatch.setenv("SUPABASE_URL", "https://x.supabase.co/rest/v1/")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", KEY)
    monkeypatch.setenv("SUPABASE_PAGE_SIZE", "250")
    monkeypatch.setenv("SUPABASE_TIMEOUT_SECONDS", "15")
    supabase = load_settings(_env_file=None).supabase()
    assert supabase.has_db and supabase.has_rest
    assert supabase.rest_url == "https://x.supabase.co/rest/v1"
    assert (supabase.page_size, supabase.timeout_seconds) == (250, 15.0)
    assert supabase.key() == KEY
    for text in (repr(supabase), str(supabase), repr(load_settings(_env_file=None))):
        assert KEY not in text and "Hunter2-db-pass" not in text


def test_a_malformed_db_url_is_named_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_DB_URL", "mysql://root:Hunter2-db-pass@db/app")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None).supabase()
    assert "SUPABASE_DB_URL" in str(caught.value)
    assert "Hunter2-db-pass" not in str(caught.value)


def test_the_connector_names_what_its_path_lacks() -> None:
    with pytest.raises(MissingSettingError) as no_db:
        PostgresReader(SupabaseSettings(url="https://x.supabase.co", service_role_key=KEY))
    assert no_db.value.setting == "SUPABASE_DB_URL" and "SUPABASE_DB_URL" in str(no_db.value)
    with pytest.raises(MissingSettingError) as no_key:
        RestReader(SupabaseSettings(url="https://x.supabase.co"))
    assert no_key.value.setting == "SUPABASE_SERVICE_ROLE_KEY"
    with pytest.raises(MissingSettingError) as no_url:
        RestReader(SupabaseSettings(service_role_key=KEY))
    assert no_url.value.setting == "SUPABASE_URL"
    with pytest.raises(MissingSettingError, match=r"SUPABASE_DB_URL.*SUPABASE_URL"):
        open_reader(SupabaseSettings())
    with pytest.raises(ValueError, match="SUPABASE_DB_URL") as bad:
        SupabaseSettings(db_url="mysql://root:Hunter2-db-pass@db/app")  # type: ignore[arg-type]
    assert "Hunter2-db-pass" not in str(bad.value)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        pytest.param({"name": "po requests", "key": "id"}, "table name", id="space"),
        pytest.param({"name": "t", "key": "id,x"}, "key column", id="comma-key"),
        pytest.param({"name": "t", "key": "id", "cursor": "id"}, "two columns", id="same"),
        pytest.param(
            {"name": "t", "key": "id", "columns": {'a"b': Kind.TEXT}}, "column name", id="quote"
        ),
        pytest.param(
            {"name": "t", "key": "id", "columns": {"updated_at": Kind.TEXT}},
            "Kind.TIMESTAMP",
            id="cursor-kind",
        ),
        pytest.param({"name": "t", "key": "id", "schema": "a.b"}, "schema name", id="schema"),
    ],
)
def test_a_bad_table_spec_is_refused_naming_the_part(spec: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        AppTable(**spec)  # type: ignore[arg-type]


def test_a_table_spec_is_frozen_data_with_key_and_cursor_first() -> None:
    spec = AppTable("t", key="id", columns={"note": Kind.TEXT, "id": Kind.INTEGER})
    assert spec.column_names == ("id", "updated_at", "note")
    assert dict(spec.columns) == {"id": Kind.INTEGER, "updated_at": Kind.TIMESTAMP, "note": "text"}
    assert {spec: 1}[AppTable("t", key="id", columns={"note": "text", "id": "integer"})] == 1
    with pytest.raises(TypeError):
        spec.columns["other"] = Kind.TEXT  # type: ignore[index]
    assert spec.empty_frame().dtypes.astype(str).tolist() == [
        "Int64",
        "datetime64[us, UTC]",
        "string",
    ]
