"""``POST /__sandbox__/records``: hostile raw records, served and filtered exactly as given."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sandbox_helpers import api_client, flt, plain_post, read_all, rows

from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle

COLLECTIONS = ("facility", "partygroup", "product", "inventoryitem", "order")
URL_FIELDS = {
    "facility": "facilityUrl",
    "partygroup": "partyUrl",
    "product": "productUrl",
    "order": "orderUrl",
}
HUGE = 10**399 + 7  # 400 digits: beyond orjson's 64-bit integers
# Values that break a naive reader, one per field in turn.
HOSTILE: list[Any] = [
    "NUL \x00 inside",
    ["a list", "where a string belongs"],
    {"an": ["object", {"deep": None}]},
    HUGE,
    -(10**30),
    "12.5",
    True,
    "",
    "  padded  ",
    "ünïcödé ✓ 🌱",
    0,
    -1.5e300,
    12.375,
    "2025-13-45T99:99:99",
    [],
]


def _hostile_records(collection: str, fields: list[str]) -> list[dict[str, Any]]:
    first = {field: HOSTILE[i % len(HOSTILE)] for i, field in enumerate(fields)}
    first["extraField"] = "m"  # unknown to the collection: becomes a column
    if collection in URL_FIELDS:
        first[URL_FIELDS[collection]] = f"/acme/api/{collection}/EVIL-1"
    second = {fields[0]: HUGE, "anotherExtra": [None, "\x00"], "lastUpdatedDate": 1700000000}
    return [first, second, {}]  # the last one has every key missing


def _status_counts(control: SandboxControl) -> dict[str, int]:
    return control.stats()["responses"]


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_injected_records_are_appended_and_served_exactly_as_given(
    private: SandboxHandle, control: SandboxControl, collection: str
) -> None:
    with api_client(private) as client:
        before = read_all(client, collection)
        fields = list(before)
        records = _hostile_records(collection, fields)
        assert control.add_records(collection, records) == 3
        after = client.get(f"/{collection}/")
    assert after.status_code == 200
    body = after.json()  # httpx decodes with the stdlib: big integers stay exact
    n = len(before[fields[0]])
    new_keys = list(dict.fromkeys(k for r in records for k in r if k not in fields))
    assert "extraField" in new_keys and "anotherExtra" in new_keys
    assert list(body) == [*fields, *new_keys]
    assert {len(values) for values in body.values()} == {n + 3}
    for field in fields:
        assert body[field][:n] == before[field]  # earlier records untouched
    for field in new_keys:
        assert body[field][:n] == [None] * n  # a new key is null for the other records
    served = rows(body)[n:]
    for record, row in zip(records, served, strict=True):
        assert row == {field: record.get(field) for field in body}  # missing keys -> null
    assert HUGE in served[1].values() and served[1][fields[0]] == HUGE
    assert control.info()["counts"][collection] == n + 3
    assert "500" not in _status_counts(control)


def test_injected_records_bypass_cached_pages(
    private: SandboxHandle, control: SandboxControl
) -> None:
    with api_client(private) as client:
        first = client.get("/product/", params={"limit": 500}).content
        assert client.get("/product/", params={"limit": 500}).content == first  # cached
        control.add_records("product", [{"productId": "NEW-1"}])
        again = client.get("/product/", params={"limit": 500}).json()
    assert again["productId"][-1] == "NEW-1"
    assert control.stats()["cache"]["hits"] == 1


def test_entity_url_of_an_injected_record(private: SandboxHandle, control: SandboxControl) -> None:
    record = {
        "productId": ["not", "a", "string"],
        "productUrl": "/acme/api/product/EVIL-1",
        "internalName": "NUL \x00 inside",
        "cost": HUGE,
        "surprise": {"k": [1, 2.5, None]},
    }
    control.add_records("product", [record])
    with api_client(private) as client:
        response = client.get(private.base_url + "/acme/api/product/EVIL-1")
        fields = list(read_all(client, "product", limit=1))
    assert response.status_code == 200
    assert response.json() == {field: record.get(field) for field in fields}


def test_filters_match_injected_values_only_where_they_compare(
    private: SandboxHandle, control: SandboxControl
) -> None:
    window = ["2025-02-20T00:00:00", "2025-03-10T23:59:59"]
    with api_client(private) as client:
        generated = read_all(client, "product", **flt({"lastUpdatedDate": window}))["productId"]
        injected = [
            {"productId": "IN-1", "lastUpdatedDate": "2025-03-01T10:00:00", "cost": HUGE},
            {"productId": "IN-2", "lastUpdatedDate": "2025-03-01", "statusId": "PRODUCT_ACTIVE"},
            {"productId": "OUT-1", "lastUpdatedDate": "2025-04-01T10:00:00", "cost": "--"},
            {"productId": "OUT-2", "lastUpdatedDate": 1740823200, "cost": True},
            {"productId": "OUT-3", "lastUpdatedDate": ["2025-03-01T10:00:00"], "cost": [5]},
            {"productId": "OUT-4", "lastUpdatedDate": {"at": "2025-03-01"}},
            {"productId": "OUT-5", "lastUpdatedDate": "2025-03-01T10:00:00+02:00"},
            {"productId": "OUT-6", "lastUpdatedDate": "not a date \x00", "statusId": ["A"]},
            {"productId": "OUT-7", "lastUpdatedDate": None, "extraField": "m"},
            {"productId": ["IN", "list"], "extraField": 5},
        ]
        control.add_records("product", injected)
        dated = read_all(client, "product", **flt({"lastUpdatedDate": window}))["productId"]
        assert dated == [*generated, "IN-1", "IN-2"]
        assert control.count("product", {"lastUpdatedDate": window}) == len(generated) + 2

        costly = read_all(client, "product", **flt({"cost": [1e15, None]}))["productId"]
        assert costly == ["IN-1"]  # the 400-digit integer compares with a number
        active = read_all(client, "product", **flt({"statusId": ["PRODUCT_ACTIVE"] * 2}))
        assert active["productId"][-1] == "IN-2"
        assert "OUT-6" not in active["productId"]
        extra = read_all(client, "product", **flt({"extraField": ["a", "z"]}))["productId"]
        assert extra == ["OUT-7"]  # a string range skips the number 5 and every null
        listed = read_all(client, "product", **flt({"productId": ["IN-1", "IN-2"]}))
        assert listed["productId"] == ["IN-1", "IN-2"]
    assert "500" not in _status_counts(control)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b'{"collection": "product", "records": [{"cost": NaN}]}', "NaN", id="nan"),
        pytest.param(
            b'{"collection": "product", "records": [{"cost": 1e400}]}', "double", id="1e400"
        ),
        pytest.param(
            b'{"collection": "product", "records": [{"internalName": "\\ud800"}]}',
            "surrogates",
            id="lone-surrogate",
        ),
        pytest.param(
            b'{"collection": "product", "records": [{"cost": ' + b"9" * 5000 + b"}]}",
            "4300 digits",
            id="5000-digit-integer",
        ),
        pytest.param(
            b'{"collection": "product", "records": [{"x": ' + b"[" * 300 + b"]" * 300 + b"}]}",
            "nesting",
            id="too-deep",
        ),
        pytest.param(
            b'{"collection": "product", "records": ["row"]}', "records[0]", id="not-an-object"
        ),
        pytest.param(b'{"collection": "vendor", "records": []}', "unknown collection", id="vendor"),
        pytest.param(b'{"collection": "product", "records": {}}', "list", id="records-not-list"),
        pytest.param(b'{"collection": "product", "records": [', "not valid JSON", id="bad-json"),
    ],
)
def test_values_the_sandbox_cannot_serve_are_refused_with_400(
    private: SandboxHandle, control: SandboxControl, raw: bytes, message: str
) -> None:
    count = control.count("product")
    response = plain_post(
        f"{private.base_url}/__sandbox__/records",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert message in response.json()["errorMessage"]
    assert control.count("product") == count  # nothing was added


def test_the_client_reports_the_servers_reason(control: SandboxControl) -> None:
    deep: list[Any] = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(httpx.HTTPStatusError, match=r"400 from records.*nesting"):
        control.add_records("product", [{"x": deep}])
    with pytest.raises(httpx.HTTPStatusError, match=r"400 from records.*records\[1\]"):
        control.add_records("product", [{}, ["row"]])  # type: ignore[list-item]


def test_every_read_and_control_operation_survives_hostile_records(
    private: SandboxHandle, control: SandboxControl
) -> None:
    with api_client(private) as client:
        for collection in COLLECTIONS:
            fields = list(read_all(client, collection, limit=1))
            control.add_records(collection, _hostile_records(collection, fields))
        for collection in COLLECTIONS:
            assert client.get(f"/{collection}/").status_code == 200
        for query in (
            "{ productViewConnection(first: 1000) { edges { node { productId productUrl title "
            "status category cost unitsInStock unitsOnOrder lastUpdated "
            "stockByFacility { facilityUrl unitsInStock } } } } }",
            "{ orderViewConnection(first: 1000, type: [PURCHASE_ORDER, SALES_ORDER]) { edges "
            "{ node { orderId orderUrl type status orderDate total supplier { partyId } } } } }",
            "{ partyViewConnection(first: 1000) { edges { node { partyId name roles status } } } }",
        ):
            for formatter in ("", "none"):
                text = query.replace("(first: 1000", f'(first: 1000, formatter: "{formatter}"')
                response = client.post("/graphql", json={"query": text})
                assert response.status_code == 200
                assert "errors" not in response.json(), response.text
        for field, bounds in [
            ("lastUpdatedDate", ["2025-01-01T00:00:00", "2025-01-30T00:00:00"]),
            ("statusId", ["A", "Z"]),
            ("extraField", [0, 10]),
            ("anotherExtra", ["a", "a"]),
        ]:
            response = client.get("/order/", params=flt({field: bounds}))
            assert response.status_code == 200, response.text
        # A write to an injected order, with hostile lines, is applied like any other.
        lines = [{"productUrl": ["x"], "productId": {"a": 1}, "quantity": 1}]
        update = client.post("/order/EVIL-1", json={"orderItemList": lines})
        assert update.status_code == 200, update.text
        assert update.json()["orderItemList"] == [
            {
                "orderItemUrl": "/acme/api/order/EVIL-1/item/1",
                "productId": {"a": 1},
                "productUrl": None,  # did not resolve: kept without its product link
                "quantity": 1,
                "unitPrice": None,
            }
        ]
    for collection in ("facility", "partygroup", "product", "order"):
        assert control.touch(collection, 10_000, seed=3)
    control.cancel_orders(10_000)
    control.deactivate_products(10_000)
    assert control.change_stock(10_000)
    assert control.delete("product", [["unhashable"], {"x": 1}, HUGE, "NO-SUCH"]) == [HUGE]
    with api_client(private) as client:
        for collection in COLLECTIONS:
            assert client.get(f"/{collection}/").status_code == 200
    assert "500" not in _status_counts(control)
