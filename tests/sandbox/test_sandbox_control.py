"""The ``/__sandbox__/`` control API and its Python client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sandbox_helpers import api_client, flt, plain_post, read_all, rows

from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle


def _recent_window() -> dict[str, list[str | None]]:
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    return {"lastUpdatedDate": [(now - timedelta(minutes=5)).isoformat(), None]}


@pytest.mark.parametrize(
    ("collection", "field"),
    [
        pytest.param("product", "cost", id="product"),
        pytest.param("order", "dueDate", id="order"),
        pytest.param("partygroup", "groupName", id="partygroup"),
        pytest.param("facility", "facilityName", id="facility"),
    ],
)
def test_touch_changes_a_field_and_last_updated_and_count_reflects_it(
    private: SandboxHandle, control: SandboxControl, collection: str, field: str
) -> None:
    window = _recent_window()
    assert control.count(collection, window) == 0
    with api_client(private) as client:
        key = read_all(client, collection, limit=1)
        key_field = next(iter(key))
        before = {r[key_field]: r for r in rows(read_all(client, collection))}
        ids = control.touch(collection, 3, seed=5)
        assert len(ids) == 3
        assert control.count(collection, window) == 3
        recent = rows(read_all(client, collection, **flt(window)))
        assert sorted(r[key_field] for r in recent) == sorted(ids)
        for record in recent:
            assert record[field] != before[record[key_field]][field]
            assert record["lastUpdatedDate"] > before[record[key_field]]["lastUpdatedDate"]


def test_touch_with_the_same_seed_picks_the_same_records(
    make_sandbox,
) -> None:
    picks = []
    for _ in range(2):
        with SandboxControl(make_sandbox().base_url) as ctl:
            picks.append(ctl.touch("product", 4, seed=9))
    assert picks[0] == picks[1]


def test_deactivate_products(private: SandboxHandle, control: SandboxControl) -> None:
    ids = control.deactivate_products(5)
    with api_client(private) as client:
        products = {p["productId"]: p for p in rows(read_all(client, "product"))}
    assert len(ids) == 5
    assert all(products[i]["statusId"] == "PRODUCT_INACTIVE" for i in ids)
    assert control.count("product", _recent_window()) == 5


def test_cancel_orders(private: SandboxHandle, control: SandboxControl) -> None:
    ids = control.cancel_orders(3)
    with api_client(private) as client:
        orders = {o["orderId"]: o for o in rows(read_all(client, "order"))}
    assert len(ids) == 3
    for order_id in ids:
        assert orders[order_id]["statusId"] == "ORDER_CANCELLED"
        assert orders[order_id]["actionUrlCancel"] is None


def test_delete_removes_records_from_reads_and_entity_urls(
    private: SandboxHandle, control: SandboxControl
) -> None:
    with api_client(private) as client:
        first = rows(read_all(client, "product", limit=2))
        count = control.count("product")
        deleted = control.delete("product", [first[0]["productId"], "NO-SUCH"])
        assert deleted == [first[0]["productId"]]
        assert control.count("product") == count - 1
        assert read_all(client, "product", limit=1)["productId"] == [first[1]["productId"]]
        assert client.get(private.base_url + first[0]["productUrl"]).status_code == 404


def test_stock_moves_on_hand_quantities_and_names_the_products(
    private: SandboxHandle, control: SandboxControl
) -> None:
    quantities = ("quantityOnHand", "quantityOnOrder", "quantityReserved")
    with api_client(private) as client:
        products = read_all(client, "product")
        sku_of = dict(zip(products["productUrl"], products["productId"], strict=True))
        before = rows(read_all(client, "inventoryitem"))
        response = plain_post(f"{private.base_url}/__sandbox__/stock", json={"count": 10})
        after = rows(read_all(client, "inventoryitem"))
    assert response.status_code == 200
    answer = response.json()
    changed = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]
    assert len(changed) == 10
    for i in changed:
        old, new = before[i], after[i]
        # Only the on-hand quantity of on-hand entries moves; identity and kind stay.
        assert old["orderUrl"] is None and old["quantityOnHand"] != 0
        assert new["quantityOnHand"] != 0 and new["quantityOnHand"] != old["quantityOnHand"]
        assert {k: v for k, v in old.items() if k != "quantityOnHand"} == {
            k: v for k, v in new.items() if k != "quantityOnHand"
        }
    urls = sorted({before[i]["productUrl"] for i in changed})
    assert answer["productUrls"] == urls
    assert answer["ids"] == sorted({sku_of[url] for url in urls})  # SKUs
    assert all(set(quantities) <= set(entry) for entry in after)


def test_change_stock_client_returns_skus_and_urls(
    private: SandboxHandle, control: SandboxControl
) -> None:
    with api_client(private) as client:
        skus = set(read_all(client, "product")["productId"])
        urls = set(read_all(client, "product")["productUrl"])
    picked = control.change_stock(5)
    assert 1 <= len(picked) <= 5 and set(picked) <= skus and picked == sorted(picked)
    picked_urls = control.change_stock_urls(5)
    assert 1 <= len(picked_urls) <= 5 and set(picked_urls) <= urls


def test_info_and_stats(private: SandboxHandle, control: SandboxControl) -> None:
    with api_client(private) as client:
        client.get("/product/")
        client.get("/product/")
        client.get("/inventoryitem")
    info = control.info()
    assert info["account"] == "acme"
    assert info["counts"]["product"] == 200
    assert set(info["counts"]) == {"facility", "partygroup", "product", "inventoryitem", "order"}
    stats = control.stats()
    assert stats["requests"]["collection"] == 2
    assert stats["responses"]["404"] == 1
    assert stats["cache"]["hits"] == 1


@pytest.mark.parametrize(
    ("op", "body"),
    [
        pytest.param("touch", {"collection": "inventoryitem", "count": 1}, id="touch-stock"),
        pytest.param("touch", {"collection": "product"}, id="missing-count"),
        pytest.param("count", {"collection": "vendor"}, id="unknown-collection"),
        pytest.param("delete", {"collection": "inventoryitem", "ids": [1]}, id="delete-stock"),
        pytest.param("rate-limit", {"per_minute": -1}, id="negative-rate"),
    ],
)
def test_bad_control_requests_are_rejected(private: SandboxHandle, op: str, body: dict) -> None:
    response = plain_post(f"{private.base_url}/__sandbox__/{op}", json=body)
    assert response.status_code in (400, 404)
    assert response.json()["errorMessage"]
