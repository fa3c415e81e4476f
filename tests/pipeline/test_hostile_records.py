"""Hostile records: any JSON value in any field loads correctly or quarantines that record.

Hypothesis puts arbitrary values (wrong JSON types, NUL characters, lone surrogates, huge
and non-finite numbers, zone-carrying and junk timestamps, blanks, missing keys) into the
fields of an otherwise valid record of every entity, next to a clean record. The transform
must never raise; the clean record must load; the hostile one must either load with the
values its source holds (under the documented rules) or be quarantined with a reason; and
whatever loads must go into a real warehouse (SQLite and PostgreSQL) and read back equal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from hostile_values import (
    MISSING,
    SPECIAL,
    assert_loaded_as_source,
    expected_text,
    frame_of,
    hostile_field,
    with_value,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.entities import ENTITIES
from pipeline.mapping import TransformContext
from pipeline.transform import transform_chunk
from warehouse import load

FACILITY = "/acme/api/facility/F1"
PARTY = "/acme/api/partygroup/100"
PRODUCT = "/acme/api/product/10077"  # a numeric URL: the SKU cannot be read from it

CTX = TransformContext(
    facility_ids={FACILITY: "F1"},
    party_ids={PARTY: "100"},
    product_skus={PRODUCT: "A-1", "/acme/api/product/B-2": "B-2"},
)

#: One valid record per entity (the clean neighbour uses a second key).
BASE: dict[str, dict[str, Any]] = {
    "facilities": {
        "facilityId": "F9",
        "facilityUrl": "/acme/api/facility/F9",
        "facilityName": "Main",
        "parentFacilityUrl": FACILITY,
        "statusId": "FACILITY_ACTIVE",
        "facilityTypeId": "WAREHOUSE",
        "lastUpdatedDate": "2024-01-02T03:04:05",
    },
    "vendors": {
        "partyId": "100",
        "partyUrl": PARTY,
        "groupName": "Kelp Co",
        "roleTypeIdList": ["SUPPLIER"],
        "statusId": "PARTY_ENABLED",
        "contactMechList": [{"contactMechTypeId": "EMAIL_ADDRESS", "infoString": "a@b.c"}],
        "lastUpdatedDate": "2024-01-02T03:04:05",
    },
    "products": {
        "productId": "A-1",
        "productUrl": PRODUCT,
        "internalName": "Potting mix",
        "statusId": "PRODUCT_ACTIVE",
        "userCategory": "Soil",
        "createdDate": "2023-01-01T00:00:00",
        "lastUpdatedDate": "2024-01-02T03:04:05",
        "cost": 12.5,
        "supplierList": [{"supplierPartyUrl": PARTY, "supplierPrefOrderId": "10_MAIN"}],
        "reorderGuidelineList": [{"facilityUrl": None, "reorderPoint": 5, "reorderQuantity": 9}],
    },
    "stock": {
        "productUrl": PRODUCT,
        "facilityUrl": FACILITY,
        "lotId": None,
        "normalizedPackingString": None,
        "orderUrl": None,
        "quantityOnHand": 2.5,
        "quantityOnOrder": 0,
        "quantityReserved": 0,
    },
    "purchase_orders": {
        "orderId": "PO-1",
        "orderUrl": "/acme/api/order/PO-1",
        "orderTypeId": "PURCHASE_ORDER",
        "statusId": "ORDER_CREATED",
        "orderDate": "2024-01-01T00:00:00",
        "dueDate": None,
        "receiveDate": None,
        "lastUpdatedDate": "2024-01-02T03:04:05",
        "destinationFacilityUrl": FACILITY,
        "orderRoleList": [{"roleTypeId": "SUPPLIER", "partyId": "100"}],
        "orderItemList": [
            {"productId": "A-1", "productUrl": PRODUCT, "quantity": 2, "unitPrice": 3}
        ],
        "orderAdjustmentList": [{"amount": "1,000", "description": "freight"}],
    },
}

#: A second, clean record of each entity that must load whatever its neighbour holds.
NEIGHBOUR_KEYS = {
    "facilities": {"facilityId": "F8", "facilityUrl": "/acme/api/facility/F8"},
    "vendors": {"partyId": "200", "partyUrl": "/acme/api/partygroup/200"},
    "products": {"productId": "B-2", "productUrl": "/acme/api/product/B-2"},
    "stock": {"productUrl": "/acme/api/product/B-2"},
    "purchase_orders": {"orderId": "PO-2", "orderUrl": "/acme/api/order/PO-2"},
}


def hostile_record(entity: str) -> st.SearchStrategy[tuple[str, Any]]:
    return hostile_field(BASE[entity], ("productId",) if entity == "stock" else ())


def expected_key(value: Any) -> Any:
    try:
        return expected_text(value)
    except AttributeError:  # not text: cannot equal a clean key
        return object()


def collides(entity: str, name: str, value: Any) -> bool:
    """Whether the hostile value makes the record's key equal the neighbour's (a duplicate:
    both are quarantined, rightly, which ``test_two_products_with_one_key...`` covers)."""
    hostile = with_value(BASE[entity], name, value)
    return any(
        expected_key(v) == expected_key(hostile.get(k)) for k, v in NEIGHBOUR_KEYS[entity].items()
    )


def check_chunk(entity: str, name: str, value: Any) -> tuple[Any, dict[str, Any]]:
    spec = ENTITIES[entity]
    hostile = with_value(BASE[entity], name, value)

    neighbour = {**BASE[entity], **NEIGHBOUR_KEYS[entity]}
    if entity == "stock":  # another product: not a duplicate of the hostile entry
        neighbour["productId"] = "B-2"
    result = transform_chunk(spec, frame_of([hostile, neighbour]), CTX)
    main = result.frames[spec.table.name]
    loaded_keys = set(main[spec.key_columns[0]])
    neighbour_key = (
        "B-2" if entity in ("products", "stock") else next(iter(NEIGHBOUR_KEYS[entity].values()))
    )
    assert neighbour_key in loaded_keys, "the clean record loads whatever its neighbour holds"
    # Nothing is lost: every selected record is loaded or quarantined, each once.
    assert result.extracted == len(main) + len(result.quarantined)
    for q in result.quarantined:
        assert q.reasons and all(isinstance(r, str) and r for r in q.reasons)
    if len(main) == 2:  # the hostile record loaded: as its source says
        assert_loaded_as_source(spec, hostile, main.iloc[0])
    return result, hostile


@pytest.mark.parametrize("entity", list(ENTITIES))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_value_in_any_field_loads_as_sent_or_quarantines_that_record(
    entity: str, data: st.DataObject
) -> None:
    name, value = data.draw(hostile_record(entity), label="field, value")
    assume(not collides(entity, name, value))
    check_chunk(entity, name, value)


@pytest.mark.parametrize("entity", list(ENTITIES))
@pytest.mark.parametrize(
    "value", [*SPECIAL, MISSING], ids=[repr(v)[:20] for v in [*SPECIAL, "MISSING"]]
)
def test_every_special_value_in_every_field(entity: str, value: Any) -> None:
    for name in BASE[entity]:
        if not collides(entity, name, value):
            check_chunk(entity, name, value)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        pytest.param("2024-05-06T07:08:09Z", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC), id="Z"),
        pytest.param(
            "2024-05-06T07:08:09+05:30", datetime(2024, 5, 6, 1, 38, 9, tzinfo=UTC), id="offset"
        ),
        pytest.param(
            "2024-05-06T07:08:09", datetime(2024, 5, 6, 12, 8, 9, tzinfo=UTC), id="account-zone"
        ),
    ],
)
def test_timestamps_with_a_zone_use_it_and_zone_less_ones_use_the_account_zone(
    value: str, stored: datetime
) -> None:
    raw = frame_of([with_value(BASE["facilities"], "lastUpdatedDate", value)])
    ctx = TransformContext(tz="America/Chicago")
    result = transform_chunk(ENTITIES["facilities"], raw, ctx)
    assert result.frames["facilities"]["last_updated_at"].iloc[0].to_pydatetime() == stored


@pytest.mark.parametrize(
    "value",
    [None, MISSING, "", "yesterday"],
    ids=lambda v: "MISSING" if v is MISSING else repr(v),  # no object address in the id
)
def test_a_record_without_a_usable_cursor_is_quarantined(value: Any) -> None:
    raw = frame_of([with_value(BASE["products"], "lastUpdatedDate", value)])
    result = transform_chunk(ENTITIES["products"], raw, CTX)
    assert result.frames["products"].empty
    (record,) = result.quarantined
    assert any(r.startswith("last_updated_at (field lastUpdatedDate)") for r in record.reasons)


def test_two_products_with_one_key_are_both_quarantined_naming_the_duplicate() -> None:
    first = with_value(BASE["products"], "productUrl", PRODUCT)
    impostor = {**first, "productUrl": "/acme/api/product/99999", "internalName": "Impostor"}
    result = transform_chunk(ENTITIES["products"], frame_of([first, impostor]), CTX)
    assert result.frames["products"].empty
    assert [q.source_key for q in result.quarantined] == ["A-1", "A-1"]
    for q in result.quarantined:
        assert q.reasons == [
            "key sku appears more than once in this read (got 'A-1', 2 records); none of "
            "them is loaded"
        ]
    assert {q.payload["productUrl"] for q in result.quarantined} == {
        PRODUCT,
        "/acme/api/product/99999",
    }


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        pytest.param(
            {"productUrl": "/acme/api/product/A-1"},
            "sku (field productUrl) is not in the product catalogue",
            id="url-built-from-sku",
        ),
        pytest.param({"productUrl": None}, "sku (field productUrl) is missing", id="no-url"),
        pytest.param(
            {"productId": "Z-9"},
            "productId on the entry disagrees with the product catalogue",
            id="productId-disagrees",
        ),
        pytest.param(
            {"quantityOnHand": 0.12345},
            "quantity_on_hand has more than 4 decimal places",
            id="too-precise",
        ),
    ],
)
def test_stock_entry_is_identified_by_its_product_url_never_guessed(
    entry: dict[str, Any], reason: str
) -> None:
    raw = frame_of([{**BASE["stock"], **entry}])
    result = transform_chunk(ENTITIES["stock"], raw, CTX)
    assert result.frames["stock_levels"].empty
    (record,) = result.quarantined
    assert any(r.startswith(reason) for r in record.reasons), record.reasons


def test_stock_entry_resolves_its_sku_through_the_catalogue_and_keeps_fractions() -> None:
    raw = frame_of([{**BASE["stock"], "productId": "A-1", "quantityOnHand": "1,234.5678"}])
    result = transform_chunk(ENTITIES["stock"], raw, CTX)
    assert result.quarantined == []
    row = result.frames["stock_levels"].iloc[0]
    assert (row["sku"], row["facility_id"], row["quantity_on_hand"]) == ("A-1", "F1", 1234.5678)


# --- through a real warehouse -------------------------------------------------------------------


@pytest.mark.parametrize("entity", ["facilities", "vendors", "products", "purchase_orders"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_what_loads_reads_back_from_the_warehouse_unchanged(
    engine: sa.Engine, entity: str, data: st.DataObject
) -> None:
    spec = ENTITIES[entity]
    name, value = data.draw(hostile_record(entity), label="field, value")
    assume(not collides(entity, name, value))
    result, _ = check_chunk(entity, name, value)
    main = result.frames[spec.table.name]
    now = datetime.now(UTC)
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            load.load_chunk(conn, spec.table, main, synced_at=now)
            if spec.child is not None:
                load.load_chunk(
                    conn, spec.child.table, result.frames[spec.child.table.name], synced_at=now
                )
            columns = list(main.columns)
            stored = [
                dict(zip(columns, row, strict=True))
                for row in conn.execute(sa.select(*(spec.table.c[c] for c in columns))).all()
            ]
        finally:
            tx.rollback()
    key = spec.key_columns[0]
    by_key = {row[key]: row for row in stored}
    sent = main.to_dict("records")
    assert sorted(by_key) == sorted(row[key] for row in sent)
    for want_row in sent:
        got_row = by_key[want_row[key]]
        for column, want in want_row.items():
            got = got_row[column]
            if want is None or (not isinstance(want, str) and pd.isna(want)):
                assert got is None, (column, want, got)
            elif isinstance(want, str):
                assert got == want, (column, want, got)  # verbatim: HTML, SQL, RTL marks, emoji
            elif isinstance(want, pd.Timestamp):
                got = pd.Timestamp(got)
                assert (got if got.tzinfo else got.tz_localize("UTC")) == want, (column, got)
            else:
                assert Decimal(str(got)) == Decimal(str(want)).quantize(Decimal("0.0001")), (
                    column,
                    want,
                    got,
                )
