"""The outbox and the watch rules on real databases (SQLite and PostgreSQL).

The outbox shares the caller's transaction: committed with the data or rolled back with
it. The watch rules announce each change of the warehouse once, whatever order loads,
rollbacks and re-evaluations come in; a Hypothesis model of the announced state checks
that against random histories.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.outbox import read_events, record_event
from events.watch import announce
from pipeline.entities import ENTITIES
from schemas.tables import event_watch, outbox_events, products, purchase_orders, stock_levels

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
ORDER_RULE = ENTITIES["purchase_orders"].events[0]
STOCK_RULE = ENTITIES["stock"].events[0]


def _events(conn: sa.Connection) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e.type, e.entity_key, e.payload) for e in read_events(conn)]


# -- the outbox ---------------------------------------------------------------------------------


def test_an_event_commits_with_its_transaction_and_rolls_back_with_it(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        with conn.begin():
            record_event(conn, "sync.completed", entity="vendors", payload={"inserted": 1})
        tx = conn.begin()
        record_event(conn, "sync.completed", entity="products", payload={"inserted": 2})
        tx.rollback()
        assert _events(conn) == [("sync.completed", "", {"inserted": 1})]


def test_payloads_are_json_with_exact_amounts_and_utc_instants(engine: sa.Engine) -> None:
    when = datetime(2026, 12, 1, 7, tzinfo=UTC) + timedelta(microseconds=5)
    with engine.begin() as conn:
        event_id = record_event(
            conn,
            "purchase_order.created",
            entity="purchase_orders",
            entity_key="PO-1",
            payload={"total": Decimal("0.1000"), "at": when, "lines": (1, 2)},
            occurred_at=NOW,
        )
        (event,) = read_events(conn)
    envelope = json.loads(json.dumps(event.envelope()))
    assert envelope == {
        "id": event_id,
        "type": "purchase_order.created",
        "occurred_at": "2026-12-01T12:00:00+00:00",
        "entity": "purchase_orders",
        "key": "PO-1",
        "run_id": None,
        "data": {"total": "0.1000", "at": "2026-12-01T07:00:00.000005+00:00", "lines": [1, 2]},
    }


def test_an_unknown_event_type_is_refused_with_the_known_ones(engine: sa.Engine) -> None:
    with (
        engine.begin() as conn,
        pytest.raises(ValueError, match=r"unknown event type .*purchase_order\.created"),
    ):
        record_event(conn, "order.made", entity="purchase_orders", payload={})


# -- the purchase-order rule --------------------------------------------------------------------


def _put_order(
    conn: sa.Connection, order_id: str, status: str | None, *, deleted: bool = False
) -> None:
    row = {
        "order_id": order_id,
        "finale_url": f"/acct/api/order/{order_id}",
        "status": status,
        "total_amount": Decimal("12.5000"),
        "content_hash": "0" * 32,
        "deleted_at": NOW if deleted else None,
        "synced_at": NOW,
    }
    conn.execute(sa.delete(purchase_orders).where(purchase_orders.c.order_id == order_id))
    conn.execute(sa.insert(purchase_orders), [row])


def _announce_orders(conn: sa.Connection, keys: list[str] | None = None) -> dict[str, int]:
    return announce(conn, ORDER_RULE, entity="purchase_orders", now=NOW, keys=keys).events


def test_the_first_evaluation_is_a_silent_baseline(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _put_order(conn, "PO-1", "ORDER_CREATED")
        done = announce(conn, ORDER_RULE, entity="purchase_orders", now=NOW, keys=["PO-1"])
        assert done.baseline and done.events == {}
        assert _events(conn) == []
        # The baseline covers every order, not only the keys it was given.
        _put_order(conn, "PO-2", "ORDER_CREATED")
        assert _announce_orders(conn, ["PO-2"]) == {"purchase_order.created": 1}


def test_orders_are_announced_when_created_and_on_each_status_change(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _put_order(conn, "PO-1", "ORDER_CREATED")
        _announce_orders(conn)
        _put_order(conn, "PO-2", "ORDER_CREATED")
        _put_order(conn, "PO-1", "ORDER_LOCKED")
        assert _announce_orders(conn) == {
            "purchase_order.created": 1,
            "purchase_order.status_changed": 1,
        }
        assert _announce_orders(conn) == {}  # nothing new: nothing announced twice
        events = _events(conn)
    assert [(t, k) for t, k, _ in events] == [
        ("purchase_order.created", "PO-2"),
        ("purchase_order.status_changed", "PO-1"),
    ]
    changed = events[1][2]
    assert (changed["status"], changed["previous_status"]) == ("ORDER_LOCKED", "ORDER_CREATED")
    assert changed["total_amount"] == "12.5000"
    assert changed["finale_url"] == "/acct/api/order/PO-1"


def test_a_deleted_order_is_forgotten_and_announced_again_if_it_returns(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _put_order(conn, "PO-1", "ORDER_CREATED")
        _announce_orders(conn)
        _put_order(conn, "PO-1", "ORDER_CREATED", deleted=True)
        assert _announce_orders(conn) == {}
        stored = conn.execute(sa.select(event_watch.c.entity_key)).scalars().all()
        assert "PO-1" not in stored
        _put_order(conn, "PO-1", "ORDER_COMPLETED")
        assert _announce_orders(conn) == {"purchase_order.created": 1}


# -- the stock rule -----------------------------------------------------------------------------


def _put_product(conn: sa.Connection, sku: str, reorder_point: str | None, status: str) -> None:
    conn.execute(sa.delete(products).where(products.c.sku == sku))
    conn.execute(
        sa.insert(products),
        [
            {
                "sku": sku,
                "finale_url": f"/acct/api/product/{sku}",
                "status": status,
                "reorder_point": None if reorder_point is None else Decimal(reorder_point),
                "reorder_quantity": Decimal("10"),
                "content_hash": "0" * 32,
                "synced_at": NOW,
            }
        ],
    )


def _put_stock(conn: sa.Connection, sku: str, facility: str, available: str) -> None:
    conn.execute(
        sa.delete(stock_levels).where(
            stock_levels.c.sku == sku, stock_levels.c.facility_id == facility
        )
    )
    quantity = Decimal(available)
    conn.execute(
        sa.insert(stock_levels),
        [
            {
                "sku": sku,
                "facility_id": facility,
                "quantity_on_hand": quantity,
                "quantity_on_order": Decimal(0),
                "quantity_reserved": Decimal(0),
                "quantity_available": quantity,
                "content_hash": "0" * 32,
                "synced_at": NOW,
            }
        ],
    )


def _announce_stock(conn: sa.Connection) -> dict[str, int]:
    return announce(conn, STOCK_RULE, entity="stock", now=NOW).events


def test_stock_is_announced_once_when_it_falls_below_and_again_after_a_restock(
    engine: sa.Engine,
) -> None:
    with engine.begin() as conn:
        _put_product(conn, "A", "5", "PRODUCT_ACTIVE")
        _put_stock(conn, "A", "F1", "4")
        _put_stock(conn, "A", "F2", "3")  # 7 in all: above
        _announce_stock(conn)
        _put_stock(conn, "A", "F2", "0")  # 4 in all: below
        assert _announce_stock(conn) == {"stock.below_reorder_point": 1}
        _put_stock(conn, "A", "F1", "1")  # lower still: no second event
        assert _announce_stock(conn) == {}
        _put_stock(conn, "A", "F1", "9")  # restocked
        assert _announce_stock(conn) == {}
        _put_stock(conn, "A", "F1", "2")  # below again
        assert _announce_stock(conn) == {"stock.below_reorder_point": 1}
        events = _events(conn)
    assert [e[2]["quantity_available"] for e in events] == ["4.0000", "2.0000"]
    assert {e[2]["reorder_point"] for e in events} == {"5.0000"}


def test_stock_without_entries_counts_as_none_but_inactive_or_unset_products_are_not_watched(
    engine: sa.Engine,
) -> None:
    with engine.begin() as conn:
        _announce_stock(conn)
        _put_product(conn, "NONE-HELD", "1", "PRODUCT_ACTIVE")
        _put_product(conn, "INACTIVE", "5", "PRODUCT_INACTIVE")
        _put_product(conn, "NO-POINT", None, "PRODUCT_ACTIVE")
        _put_product(conn, "ZERO-POINT", "0", "PRODUCT_ACTIVE")
        assert _announce_stock(conn) == {"stock.below_reorder_point": 1}
        assert [k for _, k, _ in _events(conn)] == ["NONE-HELD"]


# -- random histories -----------------------------------------------------------------------

STATUSES = st.sampled_from(["ORDER_CREATED", "ORDER_LOCKED", "ORDER_COMPLETED", None])
KEYS = st.sampled_from([f"PO-{n}" for n in range(6)] + ["PO-ü'\"", "PO-0 "])
CHANGE = st.tuples(KEYS, STATUSES, st.booleans())  # key, status, deleted
STEP = st.tuples(
    st.lists(CHANGE, max_size=5),
    st.sampled_from(["all", "touched", "rollback"]),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(history=st.lists(STEP, min_size=1, max_size=8))
def test_random_histories_announce_each_committed_change_exactly_once(
    engine: sa.Engine, history: list[tuple[list[tuple[str, str | None, bool]], str]]
) -> None:
    with engine.begin() as conn:
        for table in (outbox_events, event_watch, purchase_orders):
            conn.execute(sa.delete(table))
    table: dict[str, tuple[str | None, bool]] = {}  # the model of purchase_orders
    announced: dict[str, str] | None = None  # the model of what events said (None: no baseline)
    with engine.connect() as conn:
        for changes, how in history:
            before = len(read_events(conn))
            conn.rollback()  # end the read's implicit transaction
            tx = conn.begin()
            for key, status, deleted in changes:
                _put_order(conn, key, status, deleted=deleted)
            keys = None if how == "all" else sorted({k for k, _, _ in changes})
            _announce_orders(conn, keys)
            if how == "rollback":
                tx.rollback()
                assert len(read_events(conn)) == before
                conn.rollback()
                continue
            tx.commit()
            for key, status, deleted in changes:
                table[key] = (status, deleted)
            live = {k: "" if s is None else s for k, (s, gone) in table.items() if not gone}
            if announced is None:  # the baseline: silent, covers every order
                expected: set[tuple[str, str, str | None]] = set()
                announced = dict(live)
            else:
                scope = set(live) | set(announced) if keys is None else set(keys)
                expected = set()
                for key in scope:
                    if key in live and key not in announced:
                        expected.add(("purchase_order.created", key, None))
                    elif key in live and live[key] != announced[key]:
                        expected.add(("purchase_order.status_changed", key, announced[key]))
                    if key in live:
                        announced[key] = live[key]
                    else:
                        announced.pop(key, None)
            got = {
                (e.type, e.entity_key, e.payload.get("previous_status"))
                for e in read_events(conn)[before:]
            }
            assert got == expected
            stored = dict(
                conn.execute(
                    sa.select(event_watch.c.entity_key, event_watch.c.value).where(
                        event_watch.c.rule == ORDER_RULE.name, event_watch.c.entity_key != ""
                    )
                ).all()
            )
            assert stored == announced
            conn.rollback()
