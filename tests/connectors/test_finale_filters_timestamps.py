"""Filter encoding and Finale timestamp conversion."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from connectors.finale import (
    InvalidRequestError,
    decode_filter,
    encode_filter,
    format_finale_datetime,
    parse_finale_datetime,
)

CHICAGO = ZoneInfo("America/Chicago")


def test_filter_round_trips_and_is_compact_standard_base64() -> None:
    spec = {"lastUpdatedDate": ["2025-01-01T00:00:00", None], "statusId": ["A", "A"]}
    encoded = encode_filter(spec)
    raw = base64.b64decode(encoded, validate=True)  # standard alphabet, padded
    assert raw == b'{"lastUpdatedDate":["2025-01-01T00:00:00",null],"statusId":["A","A"]}'
    assert decode_filter(encoded) == spec


def test_padding_is_kept() -> None:
    encoded = encode_filter({"orderId": "12"})  # 23 JSON bytes -> padded
    assert len(encoded) % 4 == 0
    assert encoded.endswith("=")


def test_scalar_means_equality() -> None:
    assert decode_filter(encode_filter({"orderTypeId": "PURCHASE_ORDER"})) == {
        "orderTypeId": ["PURCHASE_ORDER", "PURCHASE_ORDER"]
    }


def test_datetimes_are_rendered_in_the_account_zone_at_whole_seconds() -> None:
    low = datetime(2025, 1, 10, 18, 30, 5, 999_000, tzinfo=UTC)
    spec = decode_filter(encode_filter({"lastUpdatedDate": [low, None]}, CHICAGO))
    assert spec == {"lastUpdatedDate": ["2025-01-10T12:30:05", None]}  # CST = UTC-6


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"lastUpdatedDate": [datetime(2025, 1, 1), None]}, id="naive-datetime"),
        pytest.param({"statusId": ["A", "B", "C"]}, id="three-values"),
        pytest.param({"supplierList": {"partyId": "1"}}, id="nested-object"),
    ],
)
def test_bad_filters_are_rejected_before_sending(spec: dict) -> None:
    with pytest.raises(InvalidRequestError):
        encode_filter(spec)


def test_parse_finale_datetime_reads_account_wall_time_as_utc() -> None:
    parsed = parse_finale_datetime("2024-07-01T05:16:14", CHICAGO)  # CDT = UTC-5
    assert parsed == datetime(2024, 7, 1, 10, 16, 14, tzinfo=UTC)
    assert parsed.tzinfo is UTC


def test_parse_finale_datetime_honours_an_explicit_offset() -> None:
    assert parse_finale_datetime("2024-07-01T05:16:14Z", CHICAGO) == datetime(
        2024, 7, 1, 5, 16, 14, tzinfo=UTC
    )


def test_format_and_parse_round_trip_across_zones() -> None:
    moment = datetime(2024, 11, 28, 5, 16, 14, tzinfo=timezone(timedelta(hours=2)))
    text = format_finale_datetime(moment, CHICAGO)
    assert text == "2024-11-27T21:16:14"
    assert parse_finale_datetime(text, CHICAGO) == moment


def test_ambiguous_autumn_wall_time_maps_to_the_earlier_instant() -> None:
    # 2024-11-03 01:30 happens twice in Chicago (CDT, then CST); earlier = 06:30 UTC.
    assert parse_finale_datetime("2024-11-03T01:30:00", CHICAGO) == datetime(
        2024, 11, 3, 6, 30, tzinfo=UTC
    )


def test_format_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_finale_datetime(datetime(2025, 1, 1), CHICAGO)
