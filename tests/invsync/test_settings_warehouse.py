"""Warehouse settings for PostgreSQL and Supabase: the schema names, and connection modes.

Supabase's transaction pooler (port 6543) cannot hold a warehouse session, so its URL is
refused when settings load, before anything connects, with the URL to use instead and the
password masked; direct and session-mode URLs load as they are.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from invsync.cli import app
from invsync.settings import ConfigError, load_settings
from pipeline.preflight import PreflightError, check_warehouse
from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade

PASSWORD = "pa55-w0rd-XYZ"
POOLER_HOST = "aws-0-eu-central-1.pooler.supabase.com"
PROJECT = "abcdefghijklmnop"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in (
        "WAREHOUSE_URL",
        "WAREHOUSE_SCHEMA",
        "WAREHOUSE_API_SCHEMA",
        "WAREHOUSE_API_ROLE",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("url", "instead"),
    [
        pytest.param(
            f"postgresql://postgres.{PROJECT}:{PASSWORD}@{POOLER_HOST}:6543/postgres",
            [
                f"postgresql+psycopg://postgres.{PROJECT}:***@{POOLER_HOST}:5432/postgres",
                f"postgresql+psycopg://postgres:***@db.{PROJECT}.supabase.co:5432/postgres",
            ],
            id="supavisor-transaction-mode",
        ),
        pytest.param(
            f"postgres://postgres:{PASSWORD}@db.{PROJECT}.supabase.co:6543/postgres",
            [f"postgresql+psycopg://postgres:***@db.{PROJECT}.supabase.co:5432/postgres"],
            id="dedicated-pooler",
        ),
    ],
)
def test_a_transaction_pooler_url_is_refused_with_the_url_to_use(
    monkeypatch: pytest.MonkeyPatch, url: str, instead: list[str]
) -> None:
    monkeypatch.setenv("WAREHOUSE_URL", url)

    with pytest.raises(ConfigError) as refused:
        load_settings()

    message = str(refused.value)
    assert "WAREHOUSE_URL" in message
    assert "transaction pooler" in message
    assert "port 5432" in message
    for suggestion in instead:
        assert suggestion in message
    assert PASSWORD not in message
    with pytest.raises(ValueError, match="transaction pooler") as engine_refused:
        create_warehouse_engine(url)
    assert PASSWORD not in str(engine_refused.value)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(
            f"postgresql://postgres.{PROJECT}:{PASSWORD}@{POOLER_HOST}:5432/postgres",
            id="session-pooler",
        ),
        pytest.param(
            f"postgresql://postgres:{PASSWORD}@db.{PROJECT}.supabase.co:5432/postgres",
            id="direct",
        ),
        pytest.param(
            f"postgresql://postgres:{PASSWORD}@db.{PROJECT}.supabase.co/postgres", id="no-port"
        ),
        pytest.param("postgresql://app@warehouse.internal:6543/wh", id="not-supabase"),
        pytest.param("sqlite:///./data/warehouse.db", id="sqlite"),
    ],
)
def test_direct_and_session_urls_load_unchanged(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("WAREHOUSE_URL", url)

    settings = load_settings()

    assert sa.engine.make_url(settings.warehouse_url).port == sa.engine.make_url(url).port
    assert settings.warehouse_schema == "inventory"


def test_cli_refuses_a_transaction_pooler_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"postgresql://postgres.{PROJECT}:{PASSWORD}@{POOLER_HOST}:6543/postgres"
    monkeypatch.setenv("WAREHOUSE_URL", url)

    result = CliRunner().invoke(app, ["db", "upgrade"])

    assert result.exit_code == 2, result.output
    assert "WAREHOUSE_URL" in result.output
    assert f"{POOLER_HOST}:5432" in result.output
    assert PASSWORD not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("env", "named"),
    [
        pytest.param({"WAREHOUSE_SCHEMA": "Inventory"}, "WAREHOUSE_SCHEMA", id="upper-case"),
        pytest.param({"WAREHOUSE_SCHEMA": "inv; drop"}, "WAREHOUSE_SCHEMA", id="not-a-name"),
        pytest.param({"WAREHOUSE_SCHEMA": "pg_catalog"}, "WAREHOUSE_SCHEMA", id="reserved"),
        pytest.param({"WAREHOUSE_API_SCHEMA": "1api"}, "WAREHOUSE_API_SCHEMA", id="api-digit"),
        pytest.param({"WAREHOUSE_API_ROLE": "a-b"}, "WAREHOUSE_API_ROLE", id="role-dash"),
        pytest.param(
            {"WAREHOUSE_SCHEMA": "wh", "WAREHOUSE_API_SCHEMA": "wh"},
            "WAREHOUSE_API_SCHEMA and WAREHOUSE_SCHEMA",
            id="api-in-warehouse-schema",
        ),
    ],
)
def test_bad_schema_or_role_names_are_refused_by_their_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    with pytest.raises(ConfigError, match=named):
        load_settings()


def test_cli_db_upgrade_migrates_into_the_configured_schema(
    monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    monkeypatch.setenv("WAREHOUSE_URL", pg_url)
    monkeypatch.setenv("WAREHOUSE_SCHEMA", "acme_wh")

    result = CliRunner().invoke(app, ["db", "upgrade"])

    assert result.exit_code == 0, result.output
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            schemas = conn.execute(
                sa.text(
                    "SELECT DISTINCT table_schema FROM information_schema.tables"
                    " WHERE table_name IN ('alembic_version', 'sync_runs', 'products')"
                )
            ).scalars()
            assert set(schemas) == {"acme_wh"}
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", [["status"], ["db", "upgrade"]])
def test_cli_names_the_setting_for_a_warehouse_left_in_public(
    monkeypatch: pytest.MonkeyPatch, pg_url: str, command: list[str]
) -> None:
    upgrade(pg_url, schema="public")  # as every version before WAREHOUSE_SCHEMA did
    monkeypatch.setenv("WAREHOUSE_URL", pg_url)

    result = CliRunner().invoke(app, command)

    assert result.exit_code == 1, result.output
    assert "set WAREHOUSE_SCHEMA=public" in result.output
    assert "Traceback" not in result.output
    monkeypatch.setenv("WAREHOUSE_SCHEMA", "public")
    assert CliRunner().invoke(app, command).exit_code == 0


def test_preflight_names_the_setting_for_a_warehouse_left_in_public(pg_url: str) -> None:
    upgrade(pg_url, schema="public")

    with pytest.raises(
        PreflightError, match=r"WAREHOUSE_SCHEMA=inventory.*set WAREHOUSE_SCHEMA=public"
    ):
        check_warehouse(pg_url, schema="inventory")
    check_warehouse(pg_url, schema="public")
