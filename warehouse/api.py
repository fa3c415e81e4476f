"""The warehouse as an API through Supabase's REST (PostgREST): read-only views and a role.

``install_api`` (``invsync db upgrade --api``) brings the warehouse to head, then, in one
transaction, creates in the API schema (``WAREHOUSE_API_SCHEMA``, default ``api``) the views
the app reads, and a read-only role (``WAREHOUSE_API_ROLE``, default ``inventory_reader``):

- The role is ``NOLOGIN``: Supabase's ``authenticator`` switches to it (it is granted to
  ``authenticator`` when that role exists). It gets ``SELECT`` on the views and ``USAGE`` on
  the API schema, nothing else it can name: no ``USAGE`` on the warehouse's schema, so it
  cannot read the tables behind the views, and no write privilege anywhere.
- The views are ``security_invoker`` (PostgreSQL 15+; older servers are refused): they read
  the tables with the reader's rights, so the row-level security policies on those tables
  apply to it. The reader therefore holds ``SELECT`` on those tables, which it can only use
  through the views (a table is looked up through its schema, and it has no ``USAGE`` there).
- Row-level security is enabled on the tables the views read, with one policy for the
  reader: live rows only (``deleted_at IS NULL``). The table owner (the sync) is not
  subject to it; any *other* role reading those tables needs a policy of its own or
  ``BYPASSRLS`` (Supabase's ``service_role`` has it).
- ``PUBLIC``, ``anon`` and ``authenticated`` get nothing on the views or the tables.

Why a step of its own and not a warehouse migration: it creates a role (cluster-wide, needs
``CREATEROLE``) and objects outside the warehouse's schema, which a plain sync must never
do; and SQLite has none of it. It is idempotent: every run drops and recreates the views and
the policies, so running it again after upgrading inventory-sync brings them up to date.
A warehouse migration that changes a column these views read must drop them first (then
re-run this step): PostgreSQL refuses to alter a column a view depends on.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import URL

from schemas.tables import metadata
from warehouse.backends import backend_for
from warehouse.db import DEFAULT_SCHEMA, create_warehouse_engine
from warehouse.migrate import upgrade

DEFAULT_API_SCHEMA = "api"
DEFAULT_READER_ROLE = "inventory_reader"
#: The role PostgREST logs in as on Supabase; it switches to the role a request's JWT names.
AUTHENTICATOR = "authenticator"
#: Supabase's API roles, which must get nothing here (skipped where they do not exist).
SUPABASE_API_ROLES = ("anon", "authenticated")
#: ``security_invoker`` views arrived in PostgreSQL 15.
MIN_SERVER_VERSION = 150000

#: Purchase-order statuses of an open order: a draft, or committed and not yet received.
OPEN_ORDER_STATUSES = ("ORDER_CREATED", "ORDER_LOCKED")
_OPEN = ", ".join(f"'{s}'" for s in OPEN_ORDER_STATUSES)

#: The tables the views read; each gets row-level security and the reader's policy.
BASE_TABLES = (
    "facilities",
    "vendors",
    "products",
    "stock_levels",
    "purchase_orders",
    "purchase_order_lines",
)

#: View name -> its query; ``{w}`` is the warehouse's schema (quoted).
VIEWS: dict[str, str] = {
    "stock_levels": """
        SELECT s.sku, p.name AS product_name, s.facility_id, f.name AS facility_name,
               s.quantity_on_hand, s.quantity_on_order, s.quantity_reserved,
               s.quantity_available, s.synced_at
          FROM {w}.stock_levels AS s
          LEFT JOIN {w}.products AS p ON p.sku = s.sku AND p.deleted_at IS NULL
          LEFT JOIN {w}.facilities AS f
                 ON f.facility_id = s.facility_id AND f.deleted_at IS NULL
         WHERE s.deleted_at IS NULL""",
    "products": """
        SELECT p.sku, p.name, p.status, p.category, p.cost,
               p.primary_vendor_party_id AS vendor_id, v.name AS vendor_name,
               p.reorder_point, p.reorder_quantity, p.finale_url, p.created_at,
               p.last_updated_at, p.synced_at
          FROM {w}.products AS p
          LEFT JOIN {w}.vendors AS v
                 ON v.party_id = p.primary_vendor_party_id AND v.deleted_at IS NULL
         WHERE p.deleted_at IS NULL""",
    "open_purchase_orders": f"""
        SELECT o.order_id, o.status, o.vendor_party_id AS vendor_id, v.name AS vendor_name,
               o.destination_facility_id AS facility_id, f.name AS facility_name,
               o.order_date, o.due_date, o.total_amount, o.line_count, o.finale_url,
               o.last_updated_at, o.synced_at
          FROM {{w}}.purchase_orders AS o
          LEFT JOIN {{w}}.vendors AS v ON v.party_id = o.vendor_party_id AND v.deleted_at IS NULL
          LEFT JOIN {{w}}.facilities AS f
                 ON f.facility_id = o.destination_facility_id AND f.deleted_at IS NULL
         WHERE o.deleted_at IS NULL AND o.status IN ({_OPEN})""",
    "open_purchase_order_lines": f"""
        SELECT l.order_id, l.line_no, l.sku, l.quantity, l.unit_price
          FROM {{w}}.purchase_order_lines AS l
          JOIN {{w}}.purchase_orders AS o ON o.order_id = l.order_id
         WHERE l.deleted_at IS NULL AND o.deleted_at IS NULL AND o.status IN ({_OPEN})""",
}


class ApiSetupError(Exception):
    """The API views cannot be installed; the message names the setting or what to do."""


@dataclass(frozen=True)
class ApiInstalled:
    """What ``install_api`` set up."""

    api_schema: str
    views: tuple[str, ...]
    reader_role: str
    #: Whether the reader was granted to ``authenticator`` (it exists on Supabase).
    granted_to_authenticator: bool
    server_version: str


def install_api(
    url: str | URL,
    *,
    schema: str = DEFAULT_SCHEMA,
    api_schema: str = DEFAULT_API_SCHEMA,
    reader_role: str = DEFAULT_READER_ROLE,
    authenticator: str = AUTHENTICATOR,
    api_roles: tuple[str, ...] = SUPABASE_API_ROLES,
) -> ApiInstalled:
    """Upgrade the warehouse, then create (or recreate) its API views, role and policies.

    Args:
        url: ``WAREHOUSE_URL`` (PostgreSQL 15 or later).
        schema: ``WAREHOUSE_SCHEMA``, where the warehouse's tables are.
        api_schema: ``WAREHOUSE_API_SCHEMA``, where the views go (created if missing).
        reader_role: ``WAREHOUSE_API_ROLE``, the read-only role (created if missing).
        authenticator: The role that switches to the reader (granted it when it exists).
        api_roles: Roles that must get nothing (Supabase's ``anon`` and ``authenticated``;
            those that do not exist are skipped).

    Returns:
        What was set up.

    Raises:
        ApiSetupError: SQLite, a server older than 15, the warehouse in ``public``, a reader
            role that bypasses row-level security, or missing privileges; the message names
            the setting at fault and what to do.
    """
    if api_schema == schema:
        raise ApiSetupError(
            f"WAREHOUSE_API_SCHEMA and WAREHOUSE_SCHEMA are both {schema!r}; put the views "
            "in a schema of their own (default 'api')"
        )
    engine = create_warehouse_engine(url, schema=schema)
    try:
        if not backend_for(engine).has_row_level_security:
            raise ApiSetupError(
                "the API views need PostgreSQL (Supabase); WAREHOUSE_URL is a SQLite file"
            )
        if schema == "public":
            raise ApiSetupError(
                "WAREHOUSE_SCHEMA=public: PUBLIC can use the public schema, so the reader role "
                "could read the warehouse's tables themselves, not only the views; move the "
                "warehouse into a schema of its own first (README, 'Upgrade notes')"
            )
        upgrade(url, schema=schema)
        try:
            with engine.begin() as conn:
                backend_for(conn).migration_lock(conn)
                return _install(conn, schema, api_schema, reader_role, authenticator, api_roles)
        except sa.exc.DBAPIError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise ApiSetupError(
                f"could not install the API views in WAREHOUSE_API_SCHEMA={api_schema} for "
                f"WAREHOUSE_API_ROLE={reader_role}: {reason}; the database user of "
                "WAREHOUSE_URL needs CREATE on the database and CREATEROLE (Supabase's "
                "postgres user has both)"
            ) from exc
    finally:
        engine.dispose()


def _install(
    conn: sa.Connection,
    schema: str,
    api_schema: str,
    reader_role: str,
    authenticator: str,
    api_roles: tuple[str, ...],
) -> ApiInstalled:
    version = int(conn.exec_driver_sql("SHOW server_version_num").scalar_one())
    shown_version = str(conn.exec_driver_sql("SHOW server_version").scalar_one())
    if version < MIN_SERVER_VERSION:
        raise ApiSetupError(
            f"the API views need PostgreSQL 15 or later (security_invoker views, so that "
            f"row-level security applies to WAREHOUSE_API_ROLE); this server is "
            f"{shown_version}. Upgrade the server (Supabase: Settings > Infrastructure)"
        )
    quote = conn.dialect.identifier_preparer.quote_identifier
    w, api, reader = quote(schema), quote(api_schema), quote(reader_role)
    existing = _existing_roles(conn, (reader_role, authenticator, *api_roles))

    role = existing.get(reader_role)
    if role is None:
        conn.exec_driver_sql(f"CREATE ROLE {reader} NOLOGIN")
    elif role["rolsuper"] or role["rolbypassrls"]:
        raise ApiSetupError(
            f"WAREHOUSE_API_ROLE={reader_role} is an existing role that bypasses row-level "
            "security (superuser or BYPASSRLS); choose a new name for the read-only role"
        )
    granted = authenticator in existing
    if granted:
        conn.exec_driver_sql(f"GRANT {reader} TO {quote(authenticator)}")
    nobody = ", ".join(["PUBLIC", *(quote(r) for r in api_roles if r in existing)])

    # The warehouse's schema: nobody but its owner may look names up in it, and none of
    # its tables is granted to anyone a default privilege may have given it to.
    conn.exec_driver_sql(f"REVOKE ALL ON SCHEMA {w} FROM {nobody}, {reader}")
    for table in (*metadata.tables, "alembic_version"):
        conn.exec_driver_sql(f"REVOKE ALL ON {w}.{quote(table)} FROM {nobody}, {reader}")
    for table in BASE_TABLES:
        policy = quote(f"{reader_role}_read")
        conn.exec_driver_sql(f"ALTER TABLE {w}.{quote(table)} ENABLE ROW LEVEL SECURITY")
        conn.exec_driver_sql(f"DROP POLICY IF EXISTS {policy} ON {w}.{quote(table)}")
        conn.exec_driver_sql(
            f"CREATE POLICY {policy} ON {w}.{quote(table)} FOR SELECT TO {reader}"
            " USING (deleted_at IS NULL)"
        )
        conn.exec_driver_sql(f"GRANT SELECT ON {w}.{quote(table)} TO {reader}")

    conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {api}")
    conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {api} TO {reader}")
    for name, query in VIEWS.items():
        view = f"{api}.{quote(name)}"
        conn.exec_driver_sql(f"DROP VIEW IF EXISTS {view}")
        conn.exec_driver_sql(
            f"CREATE VIEW {view} WITH (security_invoker = true) AS {query.format(w=w)}"
        )
        conn.exec_driver_sql(
            f"COMMENT ON VIEW {view} IS 'inventory-sync: read-only, from the warehouse in "
            f"schema {schema}; recreated by invsync db upgrade --api'"
        )
        # Supabase's default privileges grant new objects in public to anon and
        # authenticated: take back whatever a default gave.
        conn.exec_driver_sql(f"REVOKE ALL ON {view} FROM {nobody}")
        conn.exec_driver_sql(f"GRANT SELECT ON {view} TO {reader}")
    return ApiInstalled(
        api_schema=api_schema,
        views=tuple(VIEWS),
        reader_role=reader_role,
        granted_to_authenticator=granted,
        server_version=shown_version,
    )


def _existing_roles(conn: sa.Connection, names: tuple[str, ...]) -> dict[str, sa.RowMapping]:
    rows = conn.execute(
        sa.text("SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = ANY(:names)"),
        {"names": list(names)},
    ).mappings()
    return {r["rolname"]: r for r in rows}
