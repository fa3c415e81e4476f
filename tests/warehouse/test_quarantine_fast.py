"""``record_quarantine``'s bulk path stores exactly what ``to_jsonable`` + ``json`` would.

The payloads are built to hit every branch: values orjson writes itself, values handed to
``to_jsonable`` (numpy, pandas, Decimal, datetimes...), payloads that take the exact
fallback (non-str keys, huge integers, deep nesting), and text that needs escaping for
PostgreSQL's COPY.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from schemas.tables import quarantine
from warehouse import state

CREATED = datetime(2026, 8, 4, 22, 21, 7, 123456, tzinfo=timezone(timedelta(hours=2)))
NASTY_TEXT = 'tab\there\nline\r\\back\\slash\\N "quoted" é ü 日本 🎉 \x01 \u2028'


class Color(enum.Enum):
    RED = "red"
    AMOUNT = Decimal("1.50")


class Opaque:
    def __str__(self) -> str:
        return "opaque\tthing"


@dataclasses.dataclass
class Point:
    x: float
    when: date


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


PAYLOADS: list[Any] = [
    # A product as read from Finale, with the odd values a frame row can carry.
    {
        "productId": "SKU-1",
        "productUrl": "/acme/api/product/SKU-1",
        "internalName": NASTY_TEXT,
        "cost": float("nan"),
        "priceList": [
            {"price": 1.5, "productPriceTypeId": "LIST_PRICE"},
            {"price": np.float64("nan"), "qty": np.int64(7), "ratio": np.float64(0.25)},
            {"price": np.float32(0.1), "flag": np.bool_(True), "missing": None},
        ],
        "supplierList": [{"supplierPartyUrl": None, "price": Decimal("12.3400")}],
        "reorderGuidelineList": [],
        "userFieldDataList": [{}],
        "decimalNaN": Decimal("NaN"),
        "timestamp": pd.Timestamp("2025-01-02T03:04:05.123456789", tz="UTC"),
        "nat": pd.NaT,
        "na": pd.NA,
        "datetime": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        "naive": datetime(2024, 5, 6, 7, 8, 9, 10),
        "offset": datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=-5))),
        "date": date(2024, 2, 29),
        "time": time(23, 59, 1),
        "datetime64": np.datetime64("2025-01-02T03:04:05"),
        "datetime64NaT": np.datetime64("NaT"),
        "timedelta": timedelta(days=1, seconds=5),
        "array": np.array([1.5, np.nan, 3.0]),
        "series": pd.Series([1, 2]),
        "infinity": float("-inf"),
        "tuple": (1, "a", None),
        "set": {3, 1, 2},
        "bytes": b"\x00\x01\xff",
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "enum": Color.RED,
        "enumDecimal": Color.AMOUNT,
        "dataclass": Point(x=float("nan"), when=date(2024, 1, 1)),
        "object": Opaque(),
        "bool": False,
        "int": -(2**63),
        "float": 1e-300,
    },
    # Non-str keys: orjson refuses them, to_jsonable makes them strings.
    {1: [np.nan, {"x": Decimal("-0.5")}], "k": "v", None: True},
    # An integer beyond 64 bits (orjson refuses it).
    {"big": 2**70, "nested": [{"n": np.int64(1)}]},
    # Deeper than to_jsonable's cut (the innermost levels become a string).
    {"deep": _deep(300)},
    # Wide but shallow: many brackets, still the fast path.
    {"lines": [{"i": i, "tags": [str(i)]} for i in range(40)]},
    None,
    "just text",
    [],
]

RECORDS: list[dict[str, Any]] = [
    {"source_key": "SKU-1", "reasons": ["cost: not a number", "x\ty"], "payload": PAYLOADS[0]},
    {"source_key": float("nan"), "reasons": "no id", "payload": PAYLOADS[1]},
    {"reasons": None, "payload": PAYLOADS[2]},  # no source_key at all
    {"source_key": None, "reasons": [], "payload": PAYLOADS[3]},
    {"source_key": pd.NA, "reasons": "", "payload": PAYLOADS[4]},
    {"source_key": 42, "reasons": ("gen", "erator"), "payload": PAYLOADS[5]},
    {"source_key": NASTY_TEXT, "reasons": NASTY_TEXT, "payload": PAYLOADS[6]},
    {"source_key": np.int64(7), "reasons": [NASTY_TEXT, 3], "payload": PAYLOADS[7]},
]

EXPECTED_TEXT = [
    ("SKU-1", "cost: not a number; x\ty"),
    (None, "no id"),
    (None, "unspecified"),
    (None, "unspecified"),
    (None, "unspecified"),
    ("42", "gen; erator"),
    (NASTY_TEXT, NASTY_TEXT),
    ("7", f"{NASTY_TEXT}; 3"),
]

EXPECTED_PRODUCT: dict[str, Any] = {
    "productId": "SKU-1",
    "productUrl": "/acme/api/product/SKU-1",
    "internalName": NASTY_TEXT,
    "cost": None,
    "priceList": [
        {"price": 1.5, "productPriceTypeId": "LIST_PRICE"},
        {"price": None, "qty": 7, "ratio": 0.25},
        {"price": float(np.float32(0.1)), "flag": True, "missing": None},
    ],
    "supplierList": [{"supplierPartyUrl": None, "price": "12.3400"}],
    "reorderGuidelineList": [],
    "userFieldDataList": [{}],
    "decimalNaN": None,
    "timestamp": "2025-01-02T03:04:05.123456789+00:00",
    "nat": None,
    "na": None,
    "datetime": "2024-05-06T07:08:09+00:00",
    "naive": "2024-05-06T07:08:09.000010",
    "offset": "2024-05-06T07:08:09-05:00",
    "date": "2024-02-29",
    "time": "23:59:01",
    "datetime64": "2025-01-02T03:04:05",
    "datetime64NaT": None,
    "timedelta": "P1DT0H0M5S",
    "array": [1.5, None, 3.0],
    "series": [1, 2],
    "infinity": None,
    "tuple": [1, "a", None],
    "set": [1, 2, 3],
    "bytes": "AAH/",
    "uuid": "12345678-1234-5678-1234-567812345678",
    "enum": "red",
    "enumDecimal": "1.50",
    "dataclass": {"x": None, "when": "2024-01-01"},
    "object": "opaque\tthing",
    "bool": False,
    "int": -(2**63),
    "float": 1e-300,
}


def _reference(payload: Any) -> Any:
    """What the former path stored: SQLAlchemy's JSON type ran ``json.dumps`` on this."""
    return json.loads(json.dumps(state.to_jsonable(payload)))


def _stored(engine: sa.Engine, run_id: str) -> list[sa.Row[Any]]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(
                    quarantine.c.run_id,
                    quarantine.c.entity,
                    quarantine.c.source_key,
                    quarantine.c.reasons,
                    sa.cast(quarantine.c.payload, sa.Text).label("payload_text"),
                    quarantine.c.payload,
                    quarantine.c.first_seen_at,
                    quarantine.c.last_seen_at,
                    quarantine.c.synced_at,
                )
                .where(quarantine.c.run_id == run_id)
                .order_by(quarantine.c.id)
            )
        )


def test_nasty_payloads_read_back_exactly(engine: sa.Engine) -> None:
    run_id = "run\t1\\N"  # escaped for COPY like any other text
    with engine.begin() as conn:
        stored = state.record_quarantine(conn, run_id, "products", RECORDS, created_at=CREATED)
    assert stored == len(RECORDS)

    rows = _stored(engine, run_id)
    assert [(r.source_key, r.reasons) for r in rows] == EXPECTED_TEXT
    assert {(r.run_id, r.entity, r.first_seen_at, r.last_seen_at, r.synced_at) for r in rows} == {
        (run_id, "products", CREATED, CREATED, CREATED)
    }
    assert rows[0].first_seen_at.tzinfo == UTC
    texts = [r.payload_text for r in rows]
    parsed = [json.loads(text) for text in texts]
    assert parsed == [_reference(p) for p in PAYLOADS]
    assert [r.payload for r in rows] == parsed  # SQLAlchemy's own JSON read agrees
    # Key order is kept too.
    assert list(parsed[0]) == list(EXPECTED_PRODUCT)
    assert parsed[0] == EXPECTED_PRODUCT
    assert parsed[1] == {"1": [None, {"x": "-0.5"}], "k": "v", "None": True}
    assert parsed[2] == {"big": 2**70, "nested": [{"n": 1}]}
    deep = parsed[3]["deep"]
    for _ in range(64):
        deep = deep[0]
    assert deep == str(_deep(236))  # past orjson's limit: to_jsonable's cut at depth 64
    assert parsed[4] == {"lines": [{"i": i, "tags": [str(i)]} for i in range(40)]}
    assert parsed[5:] == [None, "just text", []]


def test_quarantine_joins_the_callers_transaction(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        with conn.begin():
            state.record_quarantine(conn, "kept", "products", RECORDS[:2], created_at=CREATED)
        with conn.begin() as tx:
            state.record_quarantine(conn, "undone", "products", RECORDS[:2], created_at=CREATED)
            tx.rollback()
        # Without an explicit transaction it autobegins, as conn.execute would. (Another
        # entity: the same products record would update the "kept" entry.)
        state.record_quarantine(conn, "autobegun", "vendors", RECORDS[:1], created_at=CREATED)
        conn.commit()
    assert len(_stored(engine, "kept")) == 2
    assert _stored(engine, "undone") == []
    assert len(_stored(engine, "autobegun")) == 1


def test_nothing_to_quarantine_writes_nothing(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        assert state.record_quarantine(conn, "none", "products", [], created_at=CREATED) == 0
    assert _stored(engine, "none") == []


def test_naive_created_at_is_refused(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="naive"), engine.begin() as conn:
        state.record_quarantine(conn, "r", "products", RECORDS[:1], datetime(2026, 1, 1))


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_payload_json_matches_to_jsonable(payload: Any) -> None:
    assert json.loads(state.payload_json(payload)) == _reference(payload)
