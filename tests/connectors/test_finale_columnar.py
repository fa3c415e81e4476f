"""Column-major bodies -> frames and rows, the one conversion point."""

from __future__ import annotations

import msgspec
import pytest

from connectors.finale import FatalError, RetryableError, to_frame, to_rows
from connectors.finale.columnar import decode_deferred, deferring_decoder, payload_length


def test_column_major_body_becomes_one_row_per_index() -> None:
    payload = {
        "productId": ["A-1", "B-2"],
        "productUrl": ["/acme/api/product/A-1", "/acme/api/product/10077"],
        "cost": [None, 4.5],
        "supplierList": [[{"supplierPartyUrl": "/acme/api/partygroup/100"}], []],
    }
    frame = to_frame(payload)
    assert list(frame.columns) == ["productId", "productUrl", "cost", "supplierList"]
    assert len(frame) == 2
    assert frame.loc[1, "productUrl"] == "/acme/api/product/10077"
    # Values arrive exactly as sent: None stays None (not NaN), nested lists stay lists.
    assert frame.loc[0, "cost"] is None
    assert frame.loc[0, "supplierList"] == [{"supplierPartyUrl": "/acme/api/partygroup/100"}]
    assert frame.loc[1, "supplierList"] == []
    assert all(dtype.kind == "O" for dtype in frame.dtypes)


def test_nested_lists_of_equal_length_are_not_broadcast_into_a_2d_array() -> None:
    frame = to_frame({"roleTypeIdList": [["SUPPLIER", "CUSTOMER"], ["CARRIER", "SUPPLIER"]]})
    assert frame.shape == (2, 1)
    assert frame.loc[0, "roleTypeIdList"] == ["SUPPLIER", "CUSTOMER"]


def test_ids_that_look_numeric_stay_strings() -> None:
    frame = to_frame({"partyId": ["100", "PRIMARY"]})
    assert frame.loc[0, "partyId"] == "100"


@pytest.mark.parametrize(
    "payload, expected_columns",
    [
        pytest.param({}, [], id="empty-object"),
        pytest.param({"productId": [], "cost": []}, ["productId", "cost"], id="zero-length-arrays"),
    ],
)
def test_empty_bodies_give_an_empty_frame(payload: dict, expected_columns: list[str]) -> None:
    frame = to_frame(payload)
    assert len(frame) == 0
    assert list(frame.columns) == expected_columns
    assert to_rows(payload) == []


def test_unequal_arrays_are_a_retryable_corrupt_body() -> None:
    with pytest.raises(RetryableError, match="unequal length") as info:
        to_frame({"productId": ["A", "B", "C"], "cost": [1.0, 2.0]})
    assert "truncated or corrupt" in str(info.value)
    with pytest.raises(RetryableError):
        to_rows({"productId": ["A", "B", "C"], "cost": [1.0, 2.0]})


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"productId": "A-1", "cost": 1.0}, id="single-entity-row-object"),
        pytest.param([{"productId": "A-1"}], id="row-oriented-list"),
    ],
)
def test_a_body_that_is_not_column_major_is_fatal(payload: object) -> None:
    with pytest.raises(FatalError, match="column-major"):
        to_frame(payload)  # type: ignore[arg-type]


def test_to_rows_transposes() -> None:
    rows = to_rows({"a": [1, 2], "b": ["x", None]})
    assert rows == [{"a": 1, "b": "x"}, {"a": 2, "b": None}]


# --- deferred fields -------------------------------------------------------------------------

DEFER = ("priceList", "userFieldDataList")
BODY = (
    b'{"productId": ["A-1", "B-2", "C-3"],'
    b' "priceList": [[{"price": 1.5, "productPriceTypeId": "LIST_PRICE"}], null, []],'
    b' "userFieldDataList": [[{"attrName": "a\\tb", "attrValue": "\\u00e9"}], [], null],'
    b' "supplierList": [[{"supplierPartyUrl": "/acme/api/partygroup/1"}], [], null]}'
)


def test_deferred_fields_stay_json_text_until_decoded_back_exactly() -> None:
    payload = deferring_decoder(DEFER)(BODY)
    plain = msgspec.json.decode(BODY)

    assert payload_length(payload) == 3
    assert list(payload) == list(plain)
    for name in DEFER:
        assert all(isinstance(v, msgspec.Raw) for v in payload[name])
        assert [decode_deferred(v) for v in payload[name]] == plain[name]
    # Fields not deferred decode as usual, and decode_deferred leaves them alone.
    assert payload["supplierList"] == plain["supplierList"]
    assert decode_deferred(payload["productId"][0]) == "A-1"
    frame = to_frame(payload)
    assert decode_deferred(frame.loc[2, "userFieldDataList"]) is None
    assert decode_deferred(frame.loc[0, "userFieldDataList"]) == [
        {"attrName": "a\tb", "attrValue": "é"}
    ]


def test_a_deferred_field_that_is_not_an_array_is_still_a_contract_break() -> None:
    payload = deferring_decoder(DEFER)(b'{"productId": ["A-1"], "priceList": {"x": 1}}')
    with pytest.raises(FatalError, match="'priceList' holds a dict"):
        payload_length(payload)


def test_deferring_decoder_refuses_corrupt_json_and_passes_other_shapes_through() -> None:
    decode = deferring_decoder(DEFER)
    with pytest.raises(msgspec.DecodeError):
        decode(BODY[:-20])  # truncated: the transport retries it
    assert decode(b'[{"productId": "A-1"}]') == [{"productId": "A-1"}]  # rows, not columns
