"""Fixtures: an app-like database standing in for Supabase's, the PostgREST double on it,
and settings pointing both readers at them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest
from postgrest_double import DoubleConfig, RunningDouble, start_in_thread
from supabase_support import create_app_tables

from connectors.supabase import SupabaseSettings


def conninfo(sqlalchemy_url: str) -> str:
    """A libpq URL for psycopg from the fixtures' SQLAlchemy URL."""
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def service_key() -> str:
    """A service-role-like key (JWT-shaped), new per test so leaks are unambiguous."""
    return (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0."
        + secrets.token_urlsafe(32)
    )


@pytest.fixture
def app_db(pg_url: str) -> str:
    """A throwaway database with the app tables (empty), as a psycopg URL."""
    url = conninfo(pg_url)
    with psycopg.connect(url, autocommit=True) as conn:
        create_app_tables(conn)
    return url


@pytest.fixture
def postgrest(app_db: str, service_key: str) -> Iterator[RunningDouble]:
    """The PostgREST double serving ``app_db`` on loopback (schemas public and app)."""
    with start_in_thread(
        DoubleConfig(db_url=app_db, api_key=service_key, schemas=("public", "app"))
    ) as api:
        yield api


@pytest.fixture
def settings(app_db: str, postgrest: RunningDouble, service_key: str) -> SupabaseSettings:
    """Both paths configured, small pages, few retries."""
    return SupabaseSettings(
        db_url=app_db,
        url=postgrest.base_url,
        service_role_key=service_key,
        page_size=7,
        timeout_seconds=10,
        max_retries=2,
    )
