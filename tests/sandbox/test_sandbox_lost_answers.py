"""Writes that Finale applies but whose answer never arrives, and inactive-supplier refusals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sandbox_helpers import api_client, read_all, rows

from sandbox.control import SandboxControl
from sandbox.server import SandboxHandle

DISABLED_SUPPLIER = {
    "partyId": "777001",
    "partyUrl": "/acme/api/partygroup/777001",
    "groupName": "Closed Seeds Ltd",
    "roleTypeIdList": ["SUPPLIER"],
    "statusId": "PARTY_DISABLED",
    "lastUpdatedDate": "2026-01-05T10:00:00",
}


def _suppliers(client: httpx.Client) -> list[dict[str, Any]]:
    return [p for p in rows(read_all(client, "partygroup")) if "SUPPLIER" in p["roleTypeIdList"]]


def _purchase_order(client: httpx.Client, order_id: str, party_id: str) -> dict[str, Any]:
    product_url = read_all(client, "product", limit=1)["productUrl"][0]
    return {
        "orderId": order_id,
        "orderTypeId": "PURCHASE_ORDER",
        "orderRoleList": [{"roleTypeId": "SUPPLIER", "partyId": party_id}],
        "orderItemList": [{"productUrl": product_url, "quantity": 4, "unitPrice": 2.0}],
    }


def _order_ids(client: httpx.Client) -> list[str]:
    return read_all(client, "order")["orderId"]


def test_a_timed_out_create_is_stored_and_a_repeat_is_a_duplicate(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    handle = make_sandbox(fault_delay=5.0)
    with api_client(handle) as client, SandboxControl(handle.base_url) as control:
        party = next(p for p in _suppliers(client) if p["statusId"] == "PARTY_ENABLED")
        order = _purchase_order(client, "LOST-1", party["partyId"])
        assert control.lose_answers(1, "timeout") == 1

        with pytest.raises(httpx.ReadTimeout):
            client.post("/order", json=order, timeout=0.5)

        # Stored although the client never heard back; the fault is used up.
        assert _order_ids(client).count("LOST-1") == 1
        again = client.post("/order", json=order)
        assert again.status_code == 200
        assert again.json() == {"errorMessage": "Order ID 'LOST-1' is already in use"}
        assert _order_ids(client).count("LOST-1") == 1
        assert control.stats()["faults"]["lost_answer_timeout"] == 1
        assert control.info()["faults"]["lost_answers_armed"] == 0


def test_a_dropped_answer_to_an_action_still_applies_it(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    handle = make_sandbox()
    with api_client(handle) as client, SandboxControl(handle.base_url) as control:
        party = next(p for p in _suppliers(client) if p["statusId"] == "PARTY_ENABLED")
        created = client.post("/order", json=_purchase_order(client, "LOST-2", party["partyId"]))
        order = created.json()
        control.lose_answers(1, "drop", writes="action")

        # Reads and other kinds of writes are not affected by an armed action fault.
        assert client.get(handle.base_url + order["orderUrl"]).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(handle.base_url + order["actionUrlLock"], json={})

        stored = client.get(handle.base_url + order["orderUrl"]).json()
        assert stored["statusId"] == "ORDER_LOCKED"
        assert control.stats()["faults"]["lost_answer_drop"] == 1


def test_refused_writes_keep_the_lost_answer_armed(
    make_sandbox: Callable[..., SandboxHandle],
) -> None:
    handle = make_sandbox()
    with api_client(handle) as client, SandboxControl(handle.base_url) as control:
        existing = _order_ids(client)[0]
        control.lose_answers(1, "timeout")
        # A duplicate stores nothing, so its answer is not lost.
        refused = client.post("/order", json={"orderTypeId": "SALES_ORDER", "orderId": existing})
        assert refused.status_code == 200 and "already in use" in refused.json()["errorMessage"]
        assert control.info()["faults"]["lost_answers_armed"] == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param({"how": "hang"}, "'how'", id="bad-how"),
        pytest.param({"writes": "reads"}, "'writes'", id="bad-writes"),
        pytest.param({"count": -1}, "'count'", id="negative-count"),
    ],
)
def test_lose_answers_rejects_bad_arguments(
    private: SandboxHandle, body: dict[str, Any], fragment: str
) -> None:
    with SandboxControl(private.base_url) as control, pytest.raises(httpx.HTTPStatusError) as err:
        control._post("lose-answers", body)
    assert err.value.response.status_code == 400
    assert fragment in err.value.response.json()["errorMessage"]


def test_purchase_order_with_an_inactive_or_unknown_supplier_is_refused_with_200(
    private: SandboxHandle,
) -> None:
    with api_client(private) as client, SandboxControl(private.base_url) as control:
        control.add_records("partygroup", [DISABLED_SUPPLIER])
        parties = _suppliers(client)
        disabled = next(p for p in parties if p["statusId"] == "PARTY_DISABLED")
        enabled = next(p for p in parties if p["statusId"] == "PARTY_ENABLED")
        before = _order_ids(client)

        inactive = client.post("/order", json=_purchase_order(client, "R-1", disabled["partyId"]))
        unknown = client.post("/order", json=_purchase_order(client, "R-2", "999999999"))

        assert inactive.status_code == 200
        assert "inactive" in inactive.json()["errorMessage"]
        assert disabled["partyId"] in inactive.json()["errorMessage"]
        assert unknown.status_code == 200
        assert "does not exist" in unknown.json()["errorMessage"]
        assert _order_ids(client) == before

        # An update that switches a draft to an inactive supplier is refused the same way.
        order = client.post("/order", json=_purchase_order(client, "R-3", enabled["partyId"]))
        switched = {
            **order.json(),
            "orderRoleList": [{"roleTypeId": "SUPPLIER", "partyId": disabled["partyId"]}],
        }
        refused = client.post(private.base_url + order.json()["orderUrl"], json=switched)
        assert refused.status_code == 200 and "inactive" in refused.json()["errorMessage"]
        stored = client.get(private.base_url + order.json()["orderUrl"]).json()
        assert stored["orderRoleList"][0]["partyId"] == enabled["partyId"]
