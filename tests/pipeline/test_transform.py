"""Mapping, validation and quarantine of raw Finale chunks (pure pandas, no I/O)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from pipeline.entities import ENTITIES, resolve_entities
from pipeline.mapping import TransformContext
from pipeline.transform import transform_chunk


def _products(**overrides: list) -> pd.DataFrame:
    base = {
        "productId": ["A-1", "B-2"],
        "productUrl": ["/acme/api/product/A-1", "/acme/api/product/10077"],
        "internalName": ["Potting mix", "Kelp meal"],
        "statusId": ["PRODUCT_ACTIVE", "PRODUCT_INACTIVE"],
        "userCategory": ["Soil", None],
        "cost": [1.5, "1,200"],
        "supplierList": [
            [
                {"supplierPartyUrl": "/acme/api/partygroup/200", "supplierPrefOrderId": "20_ALT"},
                {"supplierPartyUrl": "/acme/api/partygroup/100", "supplierPrefOrderId": "10_MAIN"},
            ],
            [],
        ],
        "reorderGuidelineList": [
            [
                {"facilityUrl": "/acme/api/facility/1", "reorderPoint": 5, "reorderQuantity": 10},
                {"facilityUrl": "/acme/api/facility/2", "reorderPoint": 3, "reorderQuantity": 4},
            ],
            [{"facilityUrl": None, "reorderPoint": 7, "reorderQuantity": 9}],
        ],
        "createdDate": ["2024-01-01T00:00:00", "2024-01-02T00:00:00"],
        "lastUpdatedDate": ["2025-06-01T12:00:00", "2025-11-02T01:30:00"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_product_mapping_takes_urls_from_data_and_resolves_main_supplier() -> None:
    ctx = TransformContext(party_ids={"/acme/api/partygroup/100": "100"})
    result = transform_chunk(ENTITIES["products"], _products(), ctx)
    rows = result.frames["products"].set_index("sku")
    assert rows.at["B-2", "finale_url"] == "/acme/api/product/10077"
    assert rows.at["A-1", "primary_vendor_party_id"] == "100"
    assert pd.isna(rows.at["B-2", "primary_vendor_party_id"])
    assert rows.at["B-2", "cost"] == 1200.0
    # per-facility guidelines sum; an account-wide one wins
    assert rows.at["A-1", "reorder_point"] == 8.0
    assert rows.at["B-2", "reorder_quantity"] == 9.0
    assert result.quarantined == []
    assert result.extracted == 2


def test_timestamps_are_read_in_the_account_zone_and_stored_utc() -> None:
    result = transform_chunk(
        ENTITIES["products"], _products(), TransformContext(tz="America/Chicago")
    )
    rows = result.frames["products"].set_index("sku")
    assert rows.at["A-1", "last_updated_at"] == pd.Timestamp("2025-06-01T17:00:00Z")
    # 01:30 happens twice that night: the later (standard time) instant is used
    assert rows.at["B-2", "last_updated_at"] == pd.Timestamp("2025-11-02T07:30:00Z")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        pytest.param("productId", "", "sku must not be blank", id="blank-sku"),
        pytest.param("productId", None, "sku is missing", id="null-sku"),
        pytest.param("internalName", "   ", "name must not be blank", id="blank-name"),
        pytest.param("cost", "abc", "cost (field cost) is not a finite number", id="junk-cost"),
        pytest.param("cost", 1e12, "cost must be between 0 and 1e+09", id="absurd-cost"),
        pytest.param("cost", -3, "cost must be between 0 and 1e+09", id="negative-cost"),
        pytest.param("statusId", "PRODUCT_WEIRD", "status must be one of", id="bad-status"),
        pytest.param("lastUpdatedDate", "yesterday", "is not an ISO 8601 timestamp", id="bad-date"),
    ],
)
def test_bad_product_is_quarantined_with_reason_and_the_rest_loads(
    field: str, value: object, reason: str
) -> None:
    raw = _products()
    raw[field] = raw[field].astype(object)
    raw.at[1, field] = value
    result = transform_chunk(ENTITIES["products"], raw, TransformContext())
    assert list(result.frames["products"]["sku"]) == ["A-1"]
    assert len(result.quarantined) == 1
    record = result.quarantined[0]
    assert any(reason in text for text in record.reasons), record.reasons
    assert record.payload["productUrl"] == "/acme/api/product/10077"
    assert result.extracted == len(result.frames["products"]) + len(result.quarantined)


def test_placeholder_cost_is_missing_not_bad() -> None:
    raw = _products(cost=["--", None])
    result = transform_chunk(ENTITIES["products"], raw, TransformContext())
    assert result.quarantined == []
    assert result.frames["products"]["cost"].isna().all()


def _partygroups() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "partyId": ["100", "200", "PRIMARY"],
            "partyUrl": ["/acme/api/partygroup/100", "/acme/api/partygroup/200", "/p/P"],
            "groupName": ["Acme Soils", "A Customer", "Us"],
            "roleTypeIdList": [["SUPPLIER"], ["CUSTOMER"], []],
            "statusId": ["PARTY_ENABLED"] * 3,
            "contactMechList": [
                [
                    {"contactMechTypeId": "TELECOM_NUMBER", "infoString": "+1 555 0100"},
                    {"contactMechTypeId": "EMAIL_ADDRESS", "infoString": "po@acme.test"},
                ],
                [],
                None,
            ],
            "lastUpdatedDate": ["2025-01-01T00:00:00"] * 3,
        }
    )


def test_vendors_are_suppliers_only_with_contacts_from_nested_list() -> None:
    result = transform_chunk(ENTITIES["vendors"], _partygroups(), TransformContext())
    frame = result.frames["vendors"]
    assert list(frame["party_id"]) == ["100"]
    assert frame.at[0, "email"] == "po@acme.test"
    assert frame.at[0, "phone"] == "+1 555 0100"
    assert result.extracted == 1


def _orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "orderId": ["PO-1", "SO-1", "PO-2"],
            "orderUrl": ["/acme/api/order/PO-1", "/acme/api/order/SO-1", "/acme/api/order/PO-2"],
            "orderTypeId": ["PURCHASE_ORDER", "SALES_ORDER", "PURCHASE_ORDER"],
            "statusId": ["ORDER_LOCKED", "ORDER_CREATED", "ORDER_CREATED"],
            "orderRoleList": [[{"roleTypeId": "SUPPLIER", "partyId": "100"}]] * 3,
            "orderItemList": [
                [
                    {"productId": "A-1", "quantity": 2, "unitPrice": 1.5},
                    {"productId": "B-2", "quantity": 1, "unitPrice": 10},
                ],
                [{"productId": "A-1", "quantity": 1, "unitPrice": 1}],
                [{"productId": "A-1", "quantity": 4, "unitPrice": 2}],
            ],
            "orderAdjustmentList": [[{"amount": 5, "description": "Freight"}], None, None],
            "destinationFacilityUrl": ["/acme/api/facility/10"] * 3,
            "orderDate": ["2025-01-01T00:00:00"] * 3,
            "lastUpdatedDate": ["2025-01-02T00:00:00"] * 3,
        }
    )


def test_purchase_orders_explode_lines_and_total_includes_adjustments() -> None:
    ctx = TransformContext(facility_ids={"/acme/api/facility/10": "F10"})
    result = transform_chunk(ENTITIES["purchase_orders"], _orders(), ctx)
    orders = result.frames["purchase_orders"].set_index("order_id")
    assert list(orders.index) == ["PO-1", "PO-2"]  # sales orders are not purchase orders
    assert orders.at["PO-1", "total_amount"] == 2 * 1.5 + 10 + 5
    assert orders.at["PO-1", "line_count"] == 2
    assert orders.at["PO-1", "destination_facility_id"] == "F10"
    lines = result.frames["purchase_order_lines"]
    assert lines[lines.order_id == "PO-1"][["line_no", "sku"]].values.tolist() == [
        [1, "A-1"],
        [2, "B-2"],
    ]


def test_a_bad_line_quarantines_its_whole_order() -> None:
    raw = _orders()
    raw.at[0, "orderItemList"] = [{"productId": "A-1", "quantity": -2, "unitPrice": 1}]
    result = transform_chunk(ENTITIES["purchase_orders"], raw, TransformContext())
    assert list(result.frames["purchase_orders"]["order_id"]) == ["PO-2"]
    assert set(result.frames["purchase_order_lines"]["order_id"]) == {"PO-2"}
    assert result.quarantined[0].source_key == "PO-1"
    assert result.quarantined[0].reasons == [
        "line 1: quantity must be between 0 and 1e+09 (got -2.0)"
    ]


def test_line_change_alone_changes_the_order_checksum() -> None:
    first = transform_chunk(ENTITIES["purchase_orders"], _orders(), TransformContext())
    raw = _orders()
    raw.at[0, "orderItemList"] = [
        {"productId": "A-1", "quantity": 2, "unitPrice": 1.5},
        {"productId": "C-3", "quantity": 1, "unitPrice": 10},  # same money, other product
    ]
    second = transform_chunk(ENTITIES["purchase_orders"], raw, TransformContext())
    a = first.frames["purchase_orders"].set_index("order_id")
    b = second.frames["purchase_orders"].set_index("order_id")
    assert a.at["PO-1", "total_amount"] == b.at["PO-1", "total_amount"]
    assert a.at["PO-1", "lines_checksum"] != b.at["PO-1", "lines_checksum"]
    assert a.at["PO-2", "lines_checksum"] == b.at["PO-2", "lines_checksum"]


def test_stock_quarantine_key_names_product_and_facility() -> None:
    raw = pd.DataFrame(
        {
            "productId": ["A-1", "A-1"],
            "productUrl": ["/acme/api/product/A-1"] * 2,
            "facilityUrl": ["/acme/api/facility/11", "/acme/api/facility/12"],
            "quantityOnHand": [5, 0],
            "quantityOnOrder": [0, -4],
            "quantityReserved": [0, 0],
        }
    )
    ctx = TransformContext(
        facility_ids={"/acme/api/facility/12": "12"},
        product_skus={"/acme/api/product/A-1": "A-1"},
    )
    result = transform_chunk(ENTITIES["stock"], raw, ctx)
    assert [q.source_key for q in result.quarantined] == [
        "/acme/api/product/A-1@/acme/api/facility/12"
    ]
    assert list(result.frames["stock_levels"]["quantity_on_hand"]) == [5.0]


def test_resolve_entities_keeps_dependency_order_and_names_unknown_ones() -> None:
    assert [s.name for s in resolve_entities("purchase_orders,facilities")] == [
        "facilities",
        "purchase_orders",
    ]
    with pytest.raises(ValueError, match="unknown entity vendorz; choose from facilities"):
        resolve_entities("vendorz")


def test_a_field_the_mapping_reads_cannot_be_deferred() -> None:
    products = ENTITIES["products"]
    with pytest.raises(ValueError, match=r"products: deferred_fields \['cost'\] are read"):
        dataclasses.replace(products, deferred_fields=("priceList", "cost"))
    assert dataclasses.replace(products, deferred_fields=("priceList",)).deferred_fields


def test_seen_identities_flag_what_an_earlier_chunk_of_the_read_loaded() -> None:
    from pipeline.transform import SeenIdentities

    seen = SeenIdentities()
    first = np.array([30, 10, 20], dtype=np.uint64)
    assert seen.add(first).tolist() == [False, False, False]
    # In any order, mixed with new ones; the flags follow the input order.
    assert seen.add(np.array([25, 20, 5, 30], dtype=np.uint64)).tolist() == [
        False,
        True,
        False,
        True,
    ]
    assert seen.add(np.array([5, 99], dtype=np.uint64)).tolist() == [True, False]
    assert seen.add(np.array([], dtype=np.uint64)).tolist() == []
