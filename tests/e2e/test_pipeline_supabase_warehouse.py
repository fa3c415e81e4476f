"""Finale to a Supabase-style PostgreSQL: the warehouse in its own schema, read through views.

A full sync from the sandbox lands in ``WAREHOUSE_SCHEMA`` and leaves an app's table of the
same name in ``public`` as it was. ``invsync db upgrade --api`` then creates the views the
app reads through Supabase's REST API, and a read-only role: checked on the real server by
switching to each role (``SET ROLE``), as PostgREST does, and reading what it gets:

- the reader reads the views, and they hold exactly the live rows the source says;
- it cannot read the tables behind them, nor write anything;
- row-level security applies through the views (``security_invoker``);
- a role without the grant, Supabase's ``anon`` and ``authenticated`` (stand-ins with
  unique names, since roles are cluster-wide) and ``PUBLIC`` get nothing, even with
  Supabase-style default privileges that grant every new table to ``anon``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from pipeline_e2e_support import Expected, expected_warehouse, read_source, run_sync

import flows.finale_sync  # noqa: F401  (Prefect's logging set up at collection, see test_pipeline_cli)
from invsync.cli import app
from sandbox.server import SandboxHandle
from warehouse.api import OPEN_ORDER_STATUSES, VIEWS, ApiSetupError, install_api
from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade

pytestmark = pytest.mark.slow

WAREHOUSE = "inventory"


class Roles:
    """Unique role names for one test (roles are cluster-wide), dropped afterwards."""

    def __init__(self) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.reader = f"inventory_reader_{suffix}"
        self.stranger = f"stranger_{suffix}"
        self.authenticator = f"authenticator_{suffix}"
        self.anon = f"anon_{suffix}"
        self.authenticated = f"authenticated_{suffix}"

    @property
    def all(self) -> tuple[str, ...]:
        return (self.reader, self.stranger, self.authenticator, self.anon, self.authenticated)


@pytest.fixture
def roles(pg_url: str, pg_admin_engine: sa.Engine) -> Iterator[Roles]:
    """Stand-ins for Supabase's roles, and the names the test's reader and stranger use."""
    made = Roles()
    with pg_admin_engine.connect() as conn:
        for name in (made.stranger, made.authenticator, made.anon, made.authenticated):
            conn.exec_driver_sql(f'CREATE ROLE "{name}" NOLOGIN')
    yield made
    # Privileges in the test database first (DROP OWNED), then the roles themselves.
    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            existing = set(
                conn.execute(
                    sa.text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:n)"),
                    {"n": list(made.all)},
                ).scalars()
            )
            if existing:
                conn.exec_driver_sql("DROP OWNED BY " + ", ".join(f'"{n}"' for n in existing))
    finally:
        engine.dispose()
    with pg_admin_engine.connect() as conn:
        for name in made.all:
            conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{name}"')


@pytest.fixture
def synced(pg_url: str, sandbox: SandboxHandle, roles: Roles) -> Expected:
    """A full sync of the sandbox into schema ``inventory``, on a database whose default
    privileges grant every new table to ``anon`` and ``authenticated`` (as Supabase does in
    its exposed schemas); what the source says the warehouse holds."""
    _supabase_defaults(pg_url, roles)
    upgrade(pg_url, schema=WAREHOUSE)
    engine = create_warehouse_engine(pg_url, schema=WAREHOUSE)
    try:
        run_sync(engine, sandbox, mode="full", chunk_size=250)
    finally:
        engine.dispose()
    return expected_warehouse(read_source(sandbox))


def _supabase_defaults(pg_url: str, roles: Roles) -> None:
    """What Supabase does for exposed schemas, here for every new table: grant it to anon."""
    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f'ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO "{roles.anon}", '
                f'"{roles.authenticated}"'
            )
    finally:
        engine.dispose()


def as_role(pg_url: str, role: str, sql: str, *, via: str | None = None) -> list[tuple[Any, ...]]:
    """Run ``sql`` as ``role`` (after ``via``, as PostgREST's authenticator does); roll back."""
    with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql")) as conn:
        try:
            with conn.cursor() as cursor:
                if via is not None:
                    cursor.execute(f'SET ROLE "{via}"')
                cursor.execute(f'SET ROLE "{role}"')
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description else []
        finally:
            conn.rollback()


def denied(pg_url: str, role: str, sql: str) -> bool:
    """True when PostgreSQL refuses ``sql`` to ``role`` for lack of a privilege."""
    try:
        as_role(pg_url, role, sql)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


def _q(value: Any) -> Any:
    if isinstance(value, Decimal | float) and not isinstance(value, bool):
        return Decimal(str(value)).quantize(Decimal("0.0001"))
    return value


@pytest.mark.parametrize("api_schema", ["api", "public"])
def test_the_reader_role_reads_the_views_and_nothing_else(
    pg_url: str, synced: Expected, roles: Roles, api_schema: str
) -> None:
    done = install_api(
        pg_url,
        schema=WAREHOUSE,
        api_schema=api_schema,
        reader_role=roles.reader,
        authenticator=roles.authenticator,
        api_roles=(roles.anon, roles.authenticated),
    )
    assert done.granted_to_authenticator
    api = api_schema

    # Stock per product and facility: exactly the live rows the source says.
    stock = as_role(
        pg_url,
        roles.reader,
        f"SELECT sku, facility_id, quantity_on_hand, quantity_on_order, quantity_reserved,"
        f" quantity_available, product_name FROM {api}.stock_levels",
        via=roles.authenticator,
    )
    assert {tuple(_q(v) for v in r[:6]) for r in stock} == set(synced.rows["stock"].values())
    names = {k[0]: row[2] for k, row in synced.rows["products"].items()}
    assert all(r[6] == names.get(r[0]) for r in stock)
    # Products.
    products = as_role(pg_url, roles.reader, f"SELECT sku, name, status FROM {api}.products")
    assert {r[0]: (r[1], r[2]) for r in products} == {
        k[0]: (row[2], row[3]) for k, row in synced.rows["products"].items()
    }
    # Open purchase orders only, and their lines.
    orders = synced.rows["purchase_orders"]
    open_ids = {k[0] for k, row in orders.items() if row[2] in OPEN_ORDER_STATUSES}
    assert open_ids and len(open_ids) < len(orders), "the sandbox has open and closed orders"
    read = as_role(pg_url, roles.reader, f"SELECT order_id, status FROM {api}.open_purchase_orders")
    assert {r[0] for r in read} == open_ids
    lines = as_role(
        pg_url,
        roles.reader,
        f"SELECT order_id, line_no, sku, quantity, unit_price FROM {api}.open_purchase_order_lines",
    )
    assert {tuple(_q(v) for v in r) for r in lines} == {
        row for k, row in synced.rows["purchase_order_lines"].items() if k[0] in open_ids
    }

    # Not the tables behind the views, not the bookkeeping.
    for sql in (
        f"SELECT * FROM {WAREHOUSE}.products",
        f"SELECT * FROM {WAREHOUSE}.stock_levels",
        f"SELECT * FROM {WAREHOUSE}.sync_runs",
        f"UPDATE {WAREHOUSE}.products SET name = 'x'",
        f"CREATE TABLE {api}.mine (x int)",
    ):
        assert denied(pg_url, roles.reader, sql), f"the reader may: {sql}"
    # No writes anywhere: the views are refused (they join, so PostgreSQL cannot write
    # through them either), and the reader holds no write privilege on any view or table.
    for sql in (
        f"INSERT INTO {api}.products (sku) VALUES ('X-1')",
        f"UPDATE {api}.stock_levels SET quantity_on_hand = 0",
        f"DELETE FROM {api}.open_purchase_orders",
    ):
        with pytest.raises(psycopg.errors.Error):
            as_role(pg_url, roles.reader, sql)
    assert _write_privileges(pg_url, roles.reader) == []
    # Nobody else reads the views or the tables: a role without the grant, anon and
    # authenticated (even with default privileges that granted them every new table).
    for role in (roles.stranger, roles.anon, roles.authenticated):
        for view in VIEWS:
            assert denied(pg_url, role, f"SELECT * FROM {api}.{view}"), f"{role} reads {view}"
        assert denied(pg_url, role, f"SELECT * FROM {WAREHOUSE}.products")
    assert _public_grants(pg_url, api) == []
    for role in (roles.anon, roles.authenticated, roles.stranger):
        assert _privileges(pg_url, role, "SELECT") == [], f"{role} holds SELECT"


def _write_privileges(pg_url: str, role: str) -> list[tuple[str, str]]:
    """Relations of the database ``role`` may write to (any schema but the system's)."""
    return _privileges(pg_url, role, "INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER")


def _privileges(pg_url: str, role: str, privileges: str) -> list[tuple[str, str]]:
    """Relations of the database on which ``role`` holds any of ``privileges``."""
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    sa.text(
                        "SELECT n.nspname, c.relname FROM pg_class AS c"
                        " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                        " WHERE c.relkind IN ('r', 'v', 'p', 'm')"
                        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                        " AND has_table_privilege(:role, c.oid, :privileges)"
                    ),
                    {"role": role, "privileges": privileges},
                )
            ]
    finally:
        engine.dispose()


def _public_grants(pg_url: str, api_schema: str) -> list[tuple[str, str]]:
    """Privileges PUBLIC holds on the views and on the warehouse's tables."""
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    sa.text(
                        "SELECT c.relname, a.privilege_type FROM pg_class AS c"
                        " JOIN pg_namespace AS n ON n.oid = c.relnamespace,"
                        " aclexplode(c.relacl) AS a"
                        " WHERE a.grantee = 0 AND (n.nspname = :w OR (n.nspname = :api"
                        " AND c.relname = ANY(:views)))"
                    ),
                    {"w": WAREHOUSE, "api": api_schema, "views": list(VIEWS)},
                )
            ]
    finally:
        engine.dispose()


def test_row_level_security_applies_through_the_views_and_a_rerun_restores_them(
    pg_url: str, synced: Expected, roles: Roles
) -> None:
    options: dict[str, Any] = {
        "schema": WAREHOUSE,
        "reader_role": roles.reader,
        "authenticator": roles.authenticator,
        "api_roles": (roles.anon, roles.authenticated),
    }
    install_api(pg_url, **options)
    count = "SELECT count(*) FROM api.products"
    live = len(synced.rows["products"])
    assert as_role(pg_url, roles.reader, count) == [(live,)]

    # Without the reader's policy on the table behind the view, the view shows it nothing:
    # the view reads with the reader's rights, under the table's row-level security.
    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP POLICY "{roles.reader}_read" ON {WAREHOUSE}.products')
            rls = conn.execute(
                sa.text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n"
                    " ON n.oid = c.relnamespace WHERE n.nspname = :w AND c.relrowsecurity"
                ),
                {"w": WAREHOUSE},
            ).scalars()
            assert set(rls) >= {"products", "stock_levels", "purchase_orders"}
        assert as_role(pg_url, roles.reader, count) == [(0,)]
        # A product marked deleted is not live: the policy hides it once it is back.
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"UPDATE {WAREHOUSE}.products SET deleted_at = now()"
                f" WHERE sku = (SELECT min(sku) FROM {WAREHOUSE}.products)"
            )
    finally:
        engine.dispose()

    install_api(pg_url, **options)  # idempotent: views, grants and policies recreated

    assert as_role(pg_url, roles.reader, count) == [(live - 1,)]


def test_api_refuses_sqlite_and_a_warehouse_in_public(sqlite_url: str, pg_url: str) -> None:
    with pytest.raises(ApiSetupError, match="PostgreSQL"):
        install_api(sqlite_url)
    with pytest.raises(ApiSetupError, match="WAREHOUSE_SCHEMA=public"):
        install_api(pg_url, schema="public", reader_role=f"r_{uuid.uuid4().hex[:8]}")


def run_cli(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the ``invsync`` app in-process (see ``test_pipeline_cli.run_cli``)."""
    capfd.readouterr()
    try:
        code = app(list(args), standalone_mode=False, prog_name="invsync")
    except SystemExit as exc:
        code = exc.code
    out, err = capfd.readouterr()
    return int(code or 0), out, err


def test_cli_sync_lands_in_its_schema_and_db_upgrade_api_serves_it(
    sandbox: SandboxHandle,
    pg_url: str,
    roles: Roles,
    cli_settings: Callable[..., None],
    prefect_harness: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    admin = sa.create_engine(pg_url)
    try:
        with admin.begin() as conn:  # the app's own products table, in public
            conn.exec_driver_sql("CREATE TABLE public.products (id int PRIMARY KEY, sku text)")
            conn.exec_driver_sql("INSERT INTO public.products VALUES (1, 'APP-1')")
    finally:
        admin.dispose()
    cli_settings(sandbox, pg_url, WAREHOUSE_SCHEMA="acme_wh", WAREHOUSE_API_ROLE=roles.reader)

    code, out, err = run_cli(capfd, "sync", "--mode", "full")
    assert code == 0, out + err
    code, out, err = run_cli(capfd, "db", "upgrade", "--api")
    assert code == 0, out + err
    assert "add api to the exposed schemas" in out

    expected = expected_warehouse(read_source(sandbox))
    engine = create_warehouse_engine(pg_url, schema="acme_wh")
    try:
        with engine.connect() as conn:
            where = conn.execute(
                sa.text(
                    "SELECT table_schema, table_name FROM information_schema.tables"
                    " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                )
            ).all()
            public = conn.exec_driver_sql("SELECT id, sku FROM public.products").all()
    finally:
        engine.dispose()
    assert {t for s, t in where if s == "public"} == {"products"}
    assert [tuple(r) for r in public] == [(1, "APP-1")]
    assert {s for s, _ in where} == {"public", "acme_wh", "api"}
    stock = as_role(pg_url, roles.reader, "SELECT count(*) FROM api.stock_levels")
    assert stock == [(len(expected.rows["stock"]),)]
