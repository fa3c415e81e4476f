"""``WAREHOUSE_SCHEMA``: on PostgreSQL every warehouse object lives in one schema, and
nothing of any other schema is created, altered or dropped.

Checked on the real server, by reading the catalog: where the tables, Alembic's version
table, indexes and sequences are; that a table of the same name in ``public`` keeps its
definition and rows through migrations, loads (COPY, staging, the merge), deletions and
checksums; that two warehouses in two schemas of one database neither see nor lock each
other; and what happens to a warehouse made in ``public`` before the setting existed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from schemas.tables import metadata, products, stock_levels
from warehouse.db import create_warehouse_engine
from warehouse.load import add_seen_keys, begin_seen_keys, load_chunk, mark_missing, table_checksum
from warehouse.locks import EntityLocked, entity_lock
from warehouse.migrate import WarehouseElsewhere, current_revision, head_revision, upgrade

T1 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T2 = datetime(2025, 1, 2, 12, 0, tzinfo=UTC)
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


@pytest.fixture
def engines() -> Iterator[Callable[[str, str], sa.Engine]]:
    """Factory: an engine on ``url`` whose warehouse schema is ``schema`` (disposed after)."""
    made: list[sa.Engine] = []

    def make(url: str, schema: str) -> sa.Engine:
        made.append(create_warehouse_engine(url, schema=schema))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


def _objects(url: str) -> dict[str, set[tuple[str, str]]]:
    """Every relation (table, index, sequence, view) outside the system schemas, by schema."""
    admin = sa.create_engine(url)
    try:
        with admin.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT n.nspname, c.relname, c.relkind FROM pg_class AS c"
                    " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                    " WHERE n.nspname <> ALL(:system) AND n.nspname NOT LIKE 'pg_temp%'"
                    " AND n.nspname NOT LIKE 'pg_toast%'"
                ),
                {"system": list(SYSTEM_SCHEMAS)},
            ).all()
    finally:
        admin.dispose()
    found: dict[str, set[tuple[str, str]]] = {}
    for schema, name, kind in rows:
        found.setdefault(schema, set()).add((name, kind))
    return found


def _app_table_in_public(url: str) -> None:
    """An app's own ``public.products``: another shape, and rows of its own."""
    admin = sa.create_engine(url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE public.products (id serial PRIMARY KEY, title text)")
            conn.exec_driver_sql(
                "INSERT INTO public.products (title) VALUES ('app row 1'), ('app row 2')"
            )
    finally:
        admin.dispose()


def _public_products(url: str) -> tuple[list[tuple[object, ...]], list[str]]:
    admin = sa.create_engine(url)
    try:
        with admin.connect() as conn:
            rows = conn.exec_driver_sql("SELECT id, title FROM public.products ORDER BY id").all()
            columns = conn.exec_driver_sql(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = 'products'"
                " ORDER BY ordinal_position"
            ).scalars()
            return [tuple(r) for r in rows], list(columns)
    finally:
        admin.dispose()


def _stock_frame(skus: list[str]) -> pd.DataFrame:
    n = len(skus)
    return pd.DataFrame(
        {
            "sku": skus,
            "facility_id": ["F1"] * n,
            "quantity_on_hand": [10.0] * n,
            "quantity_on_order": [0.0] * n,
            "quantity_reserved": [1.0] * n,
            "quantity_available": [9.0] * n,
        }
    )


@pytest.mark.parametrize("schema", ["inventory", "acme_wh"])
def test_upgrade_creates_every_object_in_the_warehouse_schema_and_nothing_elsewhere(
    pg_url: str, schema: str
) -> None:
    _app_table_in_public(pg_url)
    before = _objects(pg_url)

    assert upgrade(pg_url, schema=schema) == head_revision()

    after = _objects(pg_url)
    assert {s: o for s, o in after.items() if s != schema} == before
    tables = {name for name, kind in after[schema] if kind == "r"}
    assert tables == {*metadata.tables, "alembic_version"}
    assert current_revision(pg_url, schema=schema) == head_revision()
    # Alembic's version table is the schema's, not one a search would find elsewhere.
    assert current_revision(pg_url, schema="elsewhere") is None


def test_a_load_lands_in_the_schema_and_leaves_a_public_table_of_the_same_name_alone(
    pg_url: str,
    engines: Callable[[str, str], sa.Engine],
    make_products: Callable[..., pd.DataFrame],
) -> None:
    _app_table_in_public(pg_url)
    public_before = _public_products(pg_url)
    upgrade(pg_url, schema="inventory")
    outside_before = {s: o for s, o in _objects(pg_url).items() if s != "inventory"}
    engine = engines(pg_url, "inventory")
    first, second = make_products(300), make_products(300).assign(name="renamed")

    with engine.begin() as conn:  # first load: direct COPY into the table
        load_chunk(conn, products, first, synced_at=T1)
    with engine.begin() as conn:  # every row changed: COPY to a temp stage, then the merge
        counts = load_chunk(conn, products, second, synced_at=T2)
    with engine.begin() as conn:  # a full sync's deletions: a staged key set, then UPDATE
        begin_seen_keys(conn, products)
        add_seen_keys(conn, products, second.iloc[:250])
        deleted = mark_missing(conn, products, synced_at=T2)
        checksum = table_checksum(conn, products)

    assert (counts.inserted, counts.updated) == (0, 300)
    assert deleted == 50
    assert checksum.count == 250
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT count(*), count(*) FILTER (WHERE name = 'renamed') FROM products")
        ).one()
    assert tuple(stored) == (300, 300)
    assert {s: o for s, o in _objects(pg_url).items() if s != "inventory"} == outside_before
    assert _public_products(pg_url) == public_before
    assert public_before[1] == ["id", "title"]


def test_reflection_and_the_dialect_default_schema_are_the_warehouse_schema(
    pg_url: str, engines: Callable[[str, str], sa.Engine]
) -> None:
    _app_table_in_public(pg_url)
    upgrade(pg_url, schema="acme_wh")
    engine = engines(pg_url, "acme_wh")

    inspector = sa.inspect(engine)

    assert engine.dialect.default_schema_name == "acme_wh"
    assert set(inspector.get_table_names()) == {*metadata.tables, "alembic_version"}
    reflected = sa.Table("products", sa.MetaData(), autoload_with=engine)
    assert [c.name for c in reflected.columns] == [c.name for c in products.columns]


def test_two_warehouses_in_one_database_do_not_see_each_other(
    pg_url: str,
    engines: Callable[[str, str], sa.Engine],
    make_products: Callable[..., pd.DataFrame],
) -> None:
    upgrade(pg_url, schema="shop_a")
    upgrade(pg_url, schema="shop_b")
    a, b = engines(pg_url, "shop_a"), engines(pg_url, "shop_b")

    with a.begin() as conn:
        load_chunk(conn, products, make_products(20), synced_at=T1)
        load_chunk(conn, stock_levels, _stock_frame(["A-1", "A-2"]), synced_at=T1)
    with b.begin() as conn:
        load_chunk(conn, products, make_products(5, start=1000), synced_at=T1)
    # B's full sync of stock marks everything it did not see as deleted: only B's rows.
    with b.begin() as conn:
        load_chunk(conn, stock_levels, _stock_frame(["B-1"]), synced_at=T1)
        begin_seen_keys(conn, stock_levels)
        assert mark_missing(conn, stock_levels, synced_at=T2, allow_empty=True) == 1

    def skus(engine: sa.Engine) -> set[str]:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(products.c.sku)).scalars())

    def live_stock(engine: sa.Engine) -> set[str]:
        with engine.connect() as conn:
            query = sa.select(stock_levels.c.sku).where(stock_levels.c.deleted_at.is_(None))
            return set(conn.execute(query).scalars())

    assert skus(a) == {f"SKU-{i:05d}" for i in range(20)}
    assert skus(b) == {f"SKU-{i:05d}" for i in range(1000, 1005)}
    assert live_stock(a) == {"A-1", "A-2"}
    assert live_stock(b) == set()


def test_entity_locks_are_per_warehouse_schema(
    pg_url: str, engines: Callable[[str, str], sa.Engine]
) -> None:
    upgrade(pg_url, schema="shop_a")
    upgrade(pg_url, schema="shop_b")
    a, b = engines(pg_url, "shop_a"), engines(pg_url, "shop_b")
    other_a = engines(pg_url, "shop_a")
    outcome: dict[str, object] = {}

    def try_lock(engine: sa.Engine, name: str) -> None:
        try:
            with entity_lock(engine, "products"):
                outcome[name] = "locked"
        except EntityLocked as exc:
            outcome[name] = exc

    with entity_lock(a, "products") as held:
        assert held is not None
        for engine, name in ((b, "b"), (other_a, "a")):
            thread = threading.Thread(target=try_lock, args=(engine, name))
            thread.start()
            thread.join(timeout=30)

    assert outcome["b"] == "locked"  # another warehouse: not blocked
    assert isinstance(outcome["a"], EntityLocked)  # the same warehouse: blocked


def test_a_lock_taken_before_the_schema_exists_still_excludes_runs_on_that_schema(
    pg_url: str, engines: Callable[[str, str], sa.Engine]
) -> None:
    early, later = engines(pg_url, "shop_c"), engines(pg_url, "shop_c")

    with entity_lock(early, "products"):  # nothing migrated yet: shop_c does not exist
        upgrade(pg_url, schema="shop_c")
        with pytest.raises(EntityLocked), entity_lock(later, "products"):
            pass


def test_an_old_warehouse_in_public_is_refused_by_name_and_keeps_working_as_public(
    pg_url: str,
    engines: Callable[[str, str], sa.Engine],
    make_products: Callable[..., pd.DataFrame],
) -> None:
    # A warehouse as every version before WAREHOUSE_SCHEMA made it: in public.
    upgrade(pg_url, schema="public")
    with engines(pg_url, "public").begin() as conn:
        load_chunk(conn, products, make_products(7), synced_at=T1)
    before = _objects(pg_url)

    with pytest.raises(WarehouseElsewhere) as refused:
        upgrade(pg_url, schema="inventory")

    message = str(refused.value)
    assert "WAREHOUSE_SCHEMA=inventory" in message
    assert "set WAREHOUSE_SCHEMA=public" in message
    assert _objects(pg_url) == before, "nothing may be created when refusing"
    # With WAREHOUSE_SCHEMA=public it is the same warehouse, data and all.
    assert upgrade(pg_url, schema="public") == head_revision()
    with engines(pg_url, "public").connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(products)).scalar_one() == 7


def test_another_apps_alembic_table_in_public_is_not_taken_for_a_warehouse(pg_url: str) -> None:
    admin = sa.create_engine(pg_url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE public.alembic_version (version_num text)")
            conn.exec_driver_sql("INSERT INTO public.alembic_version VALUES ('abc123')")
    finally:
        admin.dispose()

    assert upgrade(pg_url, schema="inventory") == head_revision()


def test_sqlite_ignores_the_schema(sqlite_url: str) -> None:
    assert upgrade(sqlite_url, schema="anything") == head_revision()
    assert current_revision(sqlite_url, schema="other") == head_revision()
    engine = create_warehouse_engine(sqlite_url, schema="other")
    try:
        assert set(sa.inspect(engine).get_table_names()) == {*metadata.tables, "alembic_version"}
    finally:
        engine.dispose()


def _readme_move_sql() -> str:
    """The SQL block of the README's upgrade notes that moves a warehouse out of public."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    notes = readme[readme.index("## Upgrade notes") :]
    return notes[
        notes.index("```sql") + len("```sql") : notes.index("```", notes.index("```sql") + 6)
    ]


def test_the_readme_moves_an_old_public_warehouse_into_inventory_whole(
    pg_url: str,
    engines: Callable[[str, str], sa.Engine],
    make_products: Callable[..., pd.DataFrame],
) -> None:
    upgrade(pg_url, schema="public")
    with engines(pg_url, "public").begin() as conn:
        load_chunk(conn, products, make_products(7), synced_at=T1)

    admin = sa.create_engine(pg_url)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(_readme_move_sql())  # BEGIN ... COMMIT
            conn.commit()
    finally:
        admin.dispose()
    _app_table_in_public(pg_url)  # public is the app's again

    assert upgrade(pg_url, schema="inventory") == head_revision()
    objects = _objects(pg_url)
    assert {name for name, kind in objects["public"] if kind == "r"} == {"products"}
    assert {name for name, kind in objects["inventory"] if kind == "r"} == {
        *metadata.tables,
        "alembic_version",
    }
    with engines(pg_url, "inventory").connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(products)).scalar_one() == 7
