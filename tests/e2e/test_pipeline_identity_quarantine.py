"""Records are identified as Finale documents them, and quarantine counts records.

Against the sandbox, on SQLite and PostgreSQL: duplicates in one read are never merged and
never overwrite a good row; stock entries are resolved through the product catalogue (a URL
it does not hold, or a productId that disagrees, is quarantined and holds its pair back);
the same bad record read by several runs is one open quarantine entry, resolved once it
loads cleanly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from pipeline_e2e_support import read_collection, run_sync

from pipeline.sync import MissingCatalogue
from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle
from schemas import tables

pytestmark = pytest.mark.slow


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _product(sku: str, url: str, **fields: Any) -> dict[str, Any]:
    return {
        "productId": sku,
        "productUrl": url,
        "internalName": f"Injected {sku}",
        "statusId": "PRODUCT_ACTIVE",
        "createdDate": _now(),
        "lastUpdatedDate": _now(),
        "cost": 3.5,
        **fields,
    }


def _open_entries(conn: sa.Connection, entity: str) -> list[dict[str, Any]]:
    q = tables.quarantine
    query = sa.select(q).where(q.c.entity == entity, q.c.resolved_at.is_(None))
    return [dict(row) for row in conn.execute(query).mappings()]


def _product_row(conn: sa.Connection, sku: str) -> dict[str, Any] | None:
    p = tables.products
    row = conn.execute(sa.select(p).where(p.c.sku == sku)).mappings().first()
    return dict(row) if row else None


def test_duplicate_keys_in_a_read_are_quarantined_never_merged(
    engine: sa.Engine, sandbox: SandboxHandle, control: SandboxControl
) -> None:
    run_sync(engine, sandbox, mode="full")
    with engine.connect() as conn:
        victim = conn.execute(
            sa.select(tables.products.c.sku).order_by(tables.products.c.sku).limit(1)
        ).scalar_one()
        before = _product_row(conn, victim)
    assert before is not None
    # An impostor of a loaded product (read in a later chunk than the original: the
    # injected records come last), and two new records sharing one key (one chunk).
    control.add_records(
        "product",
        [
            _product(victim, "/acme/api/product/IMPOSTOR", internalName="Impostor"),
            _product("TWIN-1", "/acme/api/product/TWIN-A"),
            _product("TWIN-1", "/acme/api/product/TWIN-B"),
        ],
    )

    run = run_sync(engine, sandbox, entities=["products"], mode="full", chunk_size=200)

    result = run.results["products"]
    assert result.balanced and result.status == "succeeded", result.error
    with engine.connect() as conn:
        assert _product_row(conn, victim) == before, "the good row was not overwritten"
        assert _product_row(conn, "TWIN-1") is None, "neither twin loaded"
        entries = {
            (e["source_key"], e["payload"]["productUrl"]): e
            for e in _open_entries(conn, "products")
        }
    impostor = entries[(victim, "/acme/api/product/IMPOSTOR")]
    assert impostor["reasons"].startswith("key sku appears more than once in this read")
    assert "read earlier in this run, which was kept" in impostor["reasons"]
    twins = [e for (key, _), e in entries.items() if key == "TWIN-1"]
    # One open entry per key: the second twin's sighting updated the first's.
    assert len(twins) == 1 and twins[0]["times_seen"] == 2
    assert twins[0]["reasons"] == (
        "key sku appears more than once in this read (got 'TWIN-1', 2 records); "
        "none of them is loaded"
    )


def test_stock_entries_resolve_through_the_catalogue_and_hold_their_pair_back(
    engine: sa.Engine, sandbox: SandboxHandle, control: SandboxControl
) -> None:
    run_sync(engine, sandbox, mode="full")
    with engine.connect() as conn:
        # A product whose URL is not /product/{sku}: only the catalogue can resolve it.
        sku, url = next(
            (s, u)
            for s, u in conn.execute(sa.select(tables.products.c.sku, tables.products.c.finale_url))
            if not u.endswith("/" + s)
        )
        facility = conn.execute(
            sa.select(tables.stock_levels.c.facility_id, tables.facilities.c.facility_url)
            .join(
                tables.facilities,
                tables.facilities.c.facility_id == tables.stock_levels.c.facility_id,
            )
            .where(tables.stock_levels.c.sku == sku)
            .limit(1)
        ).first()
        stock_before = {
            (r.sku, r.facility_id): r.quantity_on_hand
            for r in conn.execute(sa.select(tables.stock_levels))
        }
    assert facility is not None, "the product with a numeric URL has stock"
    facility_id, facility_url = facility
    entry = {
        "facilityUrl": facility_url,
        "normalizedPackingString": None,
        "orderUrl": None,
        "quantityOnOrder": 0,
        "quantityReserved": 0,
    }
    control.add_records(
        "inventoryitem",
        [
            # Resolves through the catalogue (a numeric URL): adds 2.125 to the pair.
            {**entry, "productUrl": url, "lotId": "FRACTION", "quantityOnHand": 2.125},
            # Not in the catalogue (a URL built from the SKU): quarantined, never guessed.
            {
                **entry,
                "productUrl": f"/acme/api/product/{sku}-GUESS",
                "lotId": "X",
                "quantityOnHand": 5,
            },
        ],
    )

    first = run_sync(engine, sandbox, entities=["stock"])

    with engine.connect() as conn:
        stock = {
            (r.sku, r.facility_id): r.quantity_on_hand
            for r in conn.execute(sa.select(tables.stock_levels))
        }
        dirty_before = {e["source_key"] for e in _open_entries(conn, "stock")}
        (unknown,) = [e for e in _open_entries(conn, "stock") if "-GUESS@" in e["source_key"]]
    assert float(stock[(sku, facility_id)]) == float(stock_before[(sku, facility_id)]) + 2.125
    assert unknown["source_key"] == f"/acme/api/product/{sku}-GUESS@{facility_url} lot=X"
    assert "is not in the product catalogue" in unknown["reasons"]
    assert first.results["stock"].balanced

    # The same entry claiming another product by productId: quarantined, and its pair is
    # held back (keeps the value above), counted in entries.
    control.add_records(
        "inventoryitem",
        [
            {
                **entry,
                "productUrl": url,
                "productId": "SOMEONE-ELSE",
                "lotId": "Y",
                "quantityOnHand": 9,
            }
        ],
    )
    second = run_sync(engine, sandbox, entities=["stock"])

    result = second.results["stock"]
    assert result.balanced, result
    with engine.connect() as conn:
        after = {
            (r.sku, r.facility_id): r.quantity_on_hand
            for r in conn.execute(sa.select(tables.stock_levels))
        }
        entries = {e["source_key"]: e for e in _open_entries(conn, "stock")}
    assert after[(sku, facility_id)] == stock[(sku, facility_id)], "held back, not rewritten"
    claimed = entries[f"{url}@{facility_url} lot=Y"]
    assert "productId on the entry disagrees with the product catalogue" in claimed["reasons"]
    assert entries[unknown["source_key"]]["times_seen"] == 2, "one open entry, seen twice"
    assert set(entries) == dirty_before | {claimed["source_key"]}
    # Quarantined: the two bad entries plus every other entry of the held-back pair.
    served = read_collection(sandbox, "inventoryitem")
    in_pair = [e for e in served if (e["productUrl"], e["facilityUrl"]) == (url, facility_url)]
    # Quarantined: what the first run quarantined (the account's own bad entries, the
    # entries they hold back, the unknown URL) plus every entry of the newly held pair.
    assert result.quarantined == first.results["stock"].quarantined + len(in_pair)
    # The held pair's stored value is one the read could not confirm: reconciliation says so.
    assert result.status == "degraded"
    assert result.extracted == len(served)


def test_a_bad_record_is_one_open_entry_until_it_loads_cleanly(
    engine: sa.Engine, sandbox: SandboxHandle, control: SandboxControl
) -> None:
    control.add_records("product", [_product("FIXME-1", "/acme/api/product/77001", cost="12x")])
    run_sync(engine, sandbox, mode="full")
    run_sync(engine, sandbox, entities=["products"], mode="full")
    run_sync(engine, sandbox, entities=["products"])  # an overlapping incremental window
    with engine.connect() as conn:
        (entry,) = [e for e in _open_entries(conn, "products") if e["source_key"] == "FIXME-1"]
    assert entry["times_seen"] == 3
    assert entry["first_seen_at"] < entry["last_seen_at"]
    assert entry["reasons"] == "cost (field cost) is not a finite number (got '12x')"

    control.delete("product", ["FIXME-1"])
    control.add_records("product", [_product("FIXME-1", "/acme/api/product/77001", cost="12")])
    fixed = run_sync(engine, sandbox, entities=["products"])

    assert fixed.results["products"].inserted == 1
    with engine.connect() as conn:
        assert not [e for e in _open_entries(conn, "products") if e["source_key"] == "FIXME-1"]
        q = tables.quarantine
        resolved = conn.execute(
            sa.select(q.c.resolved_at, q.c.times_seen).where(q.c.source_key == "FIXME-1")
        ).one()
        row = _product_row(conn, "FIXME-1")
    assert resolved.resolved_at is not None and resolved.times_seen == 3
    assert row is not None and float(row["cost"]) == 12.0


def test_stock_before_any_product_fails_fast_naming_what_to_sync(
    engine: sa.Engine, sandbox: SandboxHandle
) -> None:
    with pytest.raises(MissingCatalogue) as failure:
        run_sync(engine, sandbox, entities=["stock"])

    message = str(failure.value)
    assert "products catalogue is empty" in message
    assert "invsync sync --entities products,stock" in message
    with engine.connect() as conn:
        # Not a content problem: nothing was quarantined, and the run log says why it failed.
        assert _open_entries(conn, "stock") == []
        q = tables.sync_runs
        recorded = conn.execute(sa.select(q.c.status, q.c.error).where(q.c.entity == "stock")).one()
    assert recorded.status == "failed"
    assert recorded.error == f"MissingCatalogue: {message}"
