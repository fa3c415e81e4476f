"""Failures become the connector's errors: PostgREST's error bodies and PostgreSQL's errors
sorted into retryable, fatal and auth, each naming what to fix; the key and the database
password never appear in a log line, an exception or a repr."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime

import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa
from postgrest_double import RunningDouble
from pydantic import SecretStr
from supabase_support import REQUESTS, insert_requests, read_all, request_rows

from connectors.supabase import (
    AppTable,
    AuthError,
    FatalError,
    Kind,
    PostgresReader,
    RestReader,
    RetryableError,
    SupabaseError,
    SupabaseSettings,
    UnreachableError,
)

pytestmark = pytest.mark.postgres

GHOST = AppTable("ghost_table", key="id")
BAD_COLUMN = AppTable("purchase_order_requests", key="id", columns={"nope": Kind.TEXT})
HIDDEN = AppTable("purchase_order_requests", key="id", schema="private")


class Sleeps(list[float]):
    """A fake sleep that records its delays."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _fill(app_db: str, count: int = 10) -> None:
    with psycopg.connect(app_db, autocommit=True) as conn:
        insert_requests(conn, list(request_rows(count)))


def _rest(settings: SupabaseSettings, sleeps: Sleeps | None = None) -> RestReader:
    return RestReader(settings, sleep=sleeps if sleeps is not None else Sleeps())


def _assert_no_secret(error: BaseException, *secrets: str) -> None:
    texts = [str(error), repr(error), *(str(a) for a in error.args)]
    if isinstance(error, SupabaseError):
        texts += [error.url or "", error.server_message or "", error.message]
    for secret in secrets:
        assert all(secret not in text for text in texts), f"secret leaked in {texts}"


@pytest.mark.parametrize(
    ("table", "kind", "status", "code", "says"),
    [
        pytest.param(BAD_COLUMN, FatalError, 400, "42703", "nope does not exist", id="column"),
        pytest.param(GHOST, FatalError, 404, "PGRST205", "no table public.ghost_table", id="table"),
        pytest.param(HIDDEN, FatalError, 406, "PGRST106", "Exposed schemas", id="schema"),
    ],
)
def test_rest_error_bodies_become_fatal_errors_with_the_servers_message(
    settings: SupabaseSettings,
    service_key: str,
    table: AppTable,
    kind: type[SupabaseError],
    status: int,
    code: str,
    says: str,
) -> None:
    sleeps = Sleeps()
    with _rest(settings, sleeps) as rest, pytest.raises(kind) as caught:
        list(rest.read_changed(table))
    error = caught.value
    assert type(error) is kind and not isinstance(error, RetryableError)
    assert (error.status, error.code) == (status, code)
    assert says in str(error)
    assert sleeps == []  # never retried
    _assert_no_secret(error, service_key)


def test_a_wrong_key_is_an_auth_error_naming_the_setting(
    settings: SupabaseSettings, service_key: str
) -> None:
    wrong = settings.model_copy(update={"service_role_key": SecretStr("eyJwrong.eyJkey.Signature")})
    with _rest(wrong) as rest, pytest.raises(AuthError) as caught:
        list(rest.read_changed(REQUESTS))
    assert caught.value.status == 401
    assert "SUPABASE_SERVICE_ROLE_KEY" in str(caught.value)
    assert "Invalid API key" in str(caught.value)
    _assert_no_secret(caught.value, "eyJwrong.eyJkey.Signature", service_key)


def test_a_403_names_the_service_role_key(
    settings: SupabaseSettings, postgrest: RunningDouble
) -> None:
    postgrest.state.fail_next(
        403, {"code": "42501", "message": "permission denied for table purchase_order_requests"}
    )
    with _rest(settings) as rest, pytest.raises(AuthError, match="service_role key") as caught:
        list(rest.read_changed(REQUESTS))
    assert "permission denied for table" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "body", "headers", "waited"),
    [
        pytest.param(
            503,
            {
                "code": "PGRST002",
                "message": "Could not query the database for the schema cache. Retrying.",
            },
            {},
            None,
            id="503",
        ),
        pytest.param(429, "slow down", {"Retry-After": "7"}, 7.0, id="429-retry-after"),
        pytest.param(502, "<html>Bad gateway</html>", {}, None, id="502-html"),
        pytest.param(200, "<html>login</html>", {}, None, id="200-html"),
    ],
)
def test_transient_answers_are_retried_and_the_read_completes(
    app_db: str,
    settings: SupabaseSettings,
    postgrest: RunningDouble,
    status: int,
    body: dict[str, str] | str,
    headers: dict[str, str],
    waited: float | None,
) -> None:
    _fill(app_db)
    kind = "text/html" if isinstance(body, str) and body.startswith("<") else None
    postgrest.state.fail_next(status, body, headers=headers, content_type=kind)
    sleeps = Sleeps()
    with _rest(settings, sleeps) as rest, PostgresReader(settings) as direct:
        frame = read_all(rest, REQUESTS)
        pd.testing.assert_frame_equal(frame, read_all(direct, REQUESTS))
    assert len(frame) == 10 and len(sleeps) == 1
    if waited is not None:
        assert sleeps == [waited]


def test_a_body_shorter_than_its_content_range_is_retried(
    app_db: str, settings: SupabaseSettings, postgrest: RunningDouble
) -> None:
    _fill(app_db)
    postgrest.state.fail_next(
        206, '[{"id": 1}]', content_type="application/json", headers={"Content-Range": "0-6/10"}
    )
    sleeps = Sleeps()
    with _rest(settings, sleeps) as rest:
        assert len(read_all(rest, REQUESTS)) == 10
    assert len(sleeps) == 1


def test_a_persistent_server_error_gives_up_with_the_servers_message(
    settings: SupabaseSettings, postgrest: RunningDouble, service_key: str
) -> None:
    # The server echoes the credentials it got: the error must not.
    echo = {
        "message": f"upstream said: Authorization: Bearer {service_key}",
        "details": service_key,
    }
    postgrest.state.fail_next(500, echo, times=3)
    sleeps = Sleeps()
    with _rest(settings, sleeps) as rest, pytest.raises(RetryableError) as caught:
        list(rest.read_changed(REQUESTS))
    assert caught.value.attempts == 3 and len(sleeps) == 2
    assert "upstream said" in str(caught.value.server_message)
    _assert_no_secret(caught.value, service_key)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_api_names_supabase_url(service_key: str) -> None:
    settings = SupabaseSettings(
        url=f"http://127.0.0.1:{_closed_port()}", service_role_key=service_key, max_retries=2
    )
    with RestReader(settings, sleep=Sleeps()) as rest, pytest.raises(UnreachableError) as caught:
        list(rest.read_changed(REQUESTS))
    assert "SUPABASE_URL" in str(caught.value) and caught.value.attempts == 3
    _assert_no_secret(caught.value, service_key)


def test_the_key_appears_in_no_log_line(
    app_db: str,
    settings: SupabaseSettings,
    postgrest: RunningDouble,
    service_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _fill(app_db, 20)
    postgrest.state.config.max_rows = 3  # logs the cap
    postgrest.state.fail_next(503, {"message": f"bad Bearer {service_key}"})
    caplog.set_level(logging.DEBUG)
    with _rest(settings) as rest:
        assert len(read_all(rest, REQUESTS)) == 20
        with pytest.raises(FatalError):
            list(rest.read_changed(GHOST))
        assert service_key not in repr(rest)
    messages = [r.getMessage() for r in caplog.records]
    assert any("max-rows" in m for m in messages)  # the cap was seen and logged
    assert any("retry 1 of 2" in m for m in messages)  # and the 503 retried
    assert any("HTTP Request" in m for m in messages)  # httpx's own lines are included
    assert all(service_key not in m for m in messages)
    assert all(service_key not in str(r.args) for r in caplog.records)


# -- direct PostgreSQL ---------------------------------------------------------------------------


def test_postgres_unknown_table_and_column_are_fatal(
    app_db: str, settings: SupabaseSettings
) -> None:
    sleeps = Sleeps()
    with PostgresReader(settings, sleep=sleeps) as direct:
        with pytest.raises(FatalError, match="ghost_table does not exist") as table:
            list(direct.read_changed(GHOST))
        with pytest.raises(FatalError, match="fix the spec's columns") as column:
            list(direct.read_changed(BAD_COLUMN))
    assert (table.value.code, column.value.code) == ("42P01", "42703")
    assert sleeps == []


def test_postgres_unknown_role_is_an_auth_error_naming_the_url(app_db: str) -> None:
    url = app_db.replace("postgresql://postgres@", "postgresql://nobody_here:Hunter2-db-pass@")
    settings = SupabaseSettings(db_url=url, max_retries=1)  # type: ignore[arg-type]
    with PostgresReader(settings) as direct, pytest.raises(AuthError) as caught:
        list(direct.read_changed(REQUESTS))
    assert "SUPABASE_DB_URL" in str(caught.value)
    _assert_no_secret(caught.value, "Hunter2-db-pass")


def test_postgres_unreachable_names_the_url(app_db: str) -> None:
    url = f"postgresql://postgres:Hunter2-db-pass@127.0.0.1:{_closed_port()}/postgres"
    settings = SupabaseSettings(db_url=url, max_retries=2, timeout_seconds=2)  # type: ignore[arg-type]
    sleeps = Sleeps()
    with PostgresReader(settings, sleep=sleeps) as direct, pytest.raises(UnreachableError) as e:
        list(direct.read_changed(REQUESTS))
    assert "SUPABASE_DB_URL" in str(e.value) and e.value.attempts == 3
    _assert_no_secret(e.value, "Hunter2-db-pass")


def test_postgres_statement_timeout_is_retryable_and_names_the_setting(
    app_db: str, settings: SupabaseSettings
) -> None:
    _fill(app_db, 3)
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute(
            "CREATE VIEW slow_requests AS SELECT r.id, r.updated_at FROM "
            "purchase_order_requests r CROSS JOIN LATERAL (SELECT pg_sleep(0.5)) s"
        )
    slow = AppTable("slow_requests", key="id")
    quick = settings.model_copy(update={"timeout_seconds": 0.1, "max_retries": 1})
    with PostgresReader(quick, sleep=Sleeps()) as direct, pytest.raises(RetryableError) as e:
        list(direct.read_changed(slow))
    assert e.value.code == "57014" and "SUPABASE_TIMEOUT_SECONDS" in str(e.value)


def test_postgres_connection_lost_between_pages_reconnects_and_finishes(
    app_db: str, settings: SupabaseSettings, pg_admin_engine: sa.Engine
) -> None:
    _fill(app_db, 30)
    database = psycopg.conninfo.conninfo_to_dict(app_db)["dbname"]
    sleeps = Sleeps()
    with PostgresReader(settings, sleep=sleeps) as direct:
        pages = direct.read_changed(REQUESTS)
        first = next(pages)
        with pg_admin_engine.connect() as admin:
            killed = admin.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :db AND application_name = 'inventory-sync'"
                ),
                {"db": database},
            ).scalar_one()
        assert killed == 1
        frame = pd.concat([first, *pages], ignore_index=True)
        reference = read_all(direct, REQUESTS)
    assert len(sleeps) == 1  # one retry after the lost connection
    pd.testing.assert_frame_equal(frame, reference)
    assert frame["id"].is_unique and len(frame) == 30


def test_a_handed_in_connection_is_used_and_left_open(
    app_db: str, settings: SupabaseSettings
) -> None:
    _fill(app_db, 9)
    with psycopg.connect(app_db, autocommit=True) as conn:
        with PostgresReader(SupabaseSettings(page_size=4), conn) as direct:
            frame = read_all(direct, REQUESTS, datetime(2000, 1, 1, tzinfo=UTC))
        assert not conn.closed and len(frame) == 9


def test_a_server_ignoring_the_keyset_filter_stops_the_read(
    app_db: str, settings: SupabaseSettings, postgrest: RunningDouble
) -> None:
    _fill(app_db, 3)
    row = (
        '[{"id": 1, "updated_at": "2026-03-01T12:00:00+00:00", "vendor": null, "note": null, '
        '"quantity": null, "unit_price": null, "weight": null, "urgent": null, '
        '"needed_by": null, "request_uuid": null, "lines": null, "created_at": null}]'
    )
    for _ in range(2):  # the first page, then the same row again
        postgrest.state.fail_next(
            206, row, content_type="application/json", headers={"Content-Range": "0-0/3"}
        )
    one_row = settings.model_copy(update={"page_size": 1})
    with _rest(one_row) as rest, pytest.raises(FatalError, match="same row again"):
        list(rest.read_changed(REQUESTS))


def test_check_access_fails_early_on_both_paths(settings: SupabaseSettings) -> None:
    with PostgresReader(settings) as direct, _rest(settings) as rest:
        for reader in (direct, rest):
            reader.check_access(REQUESTS)  # an empty table is fine
            with pytest.raises(FatalError, match="ghost_table"):
                reader.check_access(GHOST)
