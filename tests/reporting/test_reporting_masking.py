"""Personal data is masked wherever it hides in a record; ids, dates and amounts are kept."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from connectors.redact import mask_email, mask_phone, mask_pii, mask_text


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        pytest.param("jane.doe@acme-supply.com", "j***@a***.com", id="plain"),
        pytest.param("Bob@Example.ORG", "B***@E***.ORG", id="case-kept"),
        pytest.param("ops+alerts@mail.acme.co.uk", "o***@m***.uk", id="subdomains-and-tag"),
        pytest.param("  x@y.io ", "x***@y***.io", id="whitespace"),
        pytest.param("not-an-email", "***", id="no-at-sign"),
        pytest.param("@acme.com", "***", id="no-mailbox"),
    ],
)
def test_mask_email(email: str, masked: str) -> None:
    assert mask_email(email) == masked


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        pytest.param("+1 (555) 123-4567", "***67", id="us-international"),
        pytest.param("555.123.4567", "***67", id="dots"),
        pytest.param("+44 20 7946 0958", "***58", id="uk"),
        pytest.param("5551234567", "***67", id="bare-digits"),
        pytest.param("555-123-4567 ext. 89", "***67", id="extension-dropped"),
        pytest.param("123", "***", id="too-short-masked-whole"),
    ],
)
def test_mask_phone(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        pytest.param("call Jane at 555-123-4567 or jane@acme.com",
                     "call Jane at ***67 or j***@a***.com", id="phone-and-email"),
        pytest.param("mobile +15551234567.", "mobile ***67.", id="e164"),
        pytest.param("fax (555) 123 4567, thanks", "fax ***67, thanks", id="area-code"),
        pytest.param("desk 555-1234", "desk ***34", id="local-seven-digits"),
        pytest.param("email: invalid address a.b@c.de", "email: invalid address a***@c***.de",
                     id="validation-reason"),
    ],
)  # fmt: skip
def test_mask_text_masks_contact_details_in_free_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("2026-01-15", id="iso-date"),
        pytest.param("2026-01-15T10:00:00-0600", id="finale-timestamp"),
        pytest.param("2026-01-15 10:00:00", id="date-time"),
        pytest.param("15.01.2026", id="european-date"),
        pytest.param("upc 012345678905", id="upc"),
        pytest.param("sku WIDGET-1000-20", id="sku"),
        pytest.param("1234.5678", id="decimal"),
        pytest.param("quantity 1200 of 3400", id="amounts"),
        pytest.param("v1.2.3", id="version"),
    ],
)
def test_mask_text_keeps_ids_dates_and_amounts(text: str) -> None:
    assert mask_text(text) == text


def test_mask_pii_masks_contact_mechanisms_and_nested_free_text() -> None:
    record: dict[str, Any] = {
        "partyId": "100-200-3000",  # an id shaped like a phone stays: it names the record
        "contactMechList": [
            {"contactMechTypeId": "EMAIL_ADDRESS", "infoString": "jane.doe@acme-supply.com"},
            {"contactMechTypeId": "TELECOM_NUMBER", "infoString": "(555) 123-4567"},
            {"contactMechTypeId": "TELECOM_NUMBER", "infoString": "5551239876"},
            {"contactMechTypeId": "POSTAL_ADDRESS", "address1": "1 Main St", "postalCode": "78701"},
        ],
        "userFieldDataList": [{"attrName": "notes", "attrValue": "ask for bob@acme.com"}],
        "phoneNumbers": [{"type": "work", "number": "555 123 4567"}],
        "primaryEmail": "jane at acme",
        "cancelledDate": "2026-01-01",
        "quantity": 12,
        "tags": ("a@b.com", None),
    }
    original = copy.deepcopy(record)

    masked = mask_pii(record)

    assert record == original, "input must not be mutated"
    assert masked["partyId"] == "100-200-3000"
    mechs = masked["contactMechList"]
    assert mechs[0]["infoString"] == "j***@a***.com"
    assert mechs[1]["infoString"] == "***67"
    assert mechs[2]["infoString"] == "***76"
    assert mechs[3] == original["contactMechList"][3]
    assert masked["userFieldDataList"][0]["attrValue"] == "ask for b***@a***.com"
    assert masked["phoneNumbers"] == [{"type": "work", "number": "***67"}]
    assert masked["primaryEmail"] == "***"
    assert masked["cancelledDate"] == "2026-01-01"
    assert masked["quantity"] == 12
    assert masked["tags"] == ["a***@b***.com", None]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param(42, 42, id="int"),
        pytest.param(1.5, 1.5, id="float"),
        pytest.param(True, True, id="bool"),
        pytest.param("plain", "plain", id="plain-string"),
        pytest.param(["x@y.com"], ["x***@y***.com"], id="list"),
    ],
)
def test_mask_pii_scalars_and_lists(value: Any, expected: Any) -> None:
    assert mask_pii(value) == expected


@pytest.mark.parametrize(
    "key",
    ["phone", "Phone", "phone_number", "mobilePhone", "FAX", "cellPhone", "telephone"],
)
def test_phone_named_fields_are_masked_whatever_their_format(key: str) -> None:
    assert mask_pii({key: "555 12 34 567"}) == {key: "***67"}


@pytest.mark.parametrize("key", ["cancelled", "hotel", "statusId", "telemetry", "faxed_by"])
def test_words_containing_phone_words_are_not_phone_fields(key: str) -> None:
    # "cancelled" contains "cell", "hotel" ends in "tel": field names are compared by word.
    assert mask_pii({key: "12345"}) == {key: "12345"}
