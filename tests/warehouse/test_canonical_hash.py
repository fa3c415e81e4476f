"""The canonical form behind ``content_hash``: one value, one text, whatever the dtype."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from schemas.tables import products, purchase_order_lines
from warehouse.canonical import (
    checksum_of_hashes,
    content_hashes,
    render_rows,
)


def _product(**values: object) -> pd.DataFrame:
    row: dict[str, object] = {
        "sku": "SKU-1",
        "finale_url": "/acme/api/product/SKU-1",
        "name": None,
        "status": None,
        "category": None,
        "cost": None,
        "primary_vendor_party_id": None,
        "reorder_point": None,
        "reorder_quantity": None,
        "created_at": None,
        "last_updated_at": None,
    }
    row.update(values)
    return pd.DataFrame([row])


def _hash(**values: object) -> str:
    return str(content_hashes(products, _product(**values)).iloc[0])


def _column_text(column: str, series: pd.Series) -> list[str | None]:
    table = purchase_order_lines if column == "line_no" else products
    return render_rows(table, series.to_frame(column), columns=[column]).values[column].to_pylist()


def test_the_canonical_line_is_copy_text_and_the_hash_is_its_md5() -> None:
    frame = _product(
        name="Tab\there",
        cost=1.5,
        reorder_point=Decimal("2"),
        created_at=datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    )
    rendered = render_rows(products, frame)
    line = rendered.lines[0].as_py()
    assert line == "\t".join(
        [
            "SKU-1",
            "/acme/api/product/SKU-1",
            "Tab\\there",
            "\\N",
            "\\N",
            "1.5000",
            "\\N",
            "2.0000",
            "\\N",
            "2024-01-02 03:04:05.000006",
            "\\N",
        ]
    )
    assert rendered.hashes[0].as_py() == hashlib.md5(line.encode()).hexdigest()


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(
            [1.5, Decimal("1.5"), Decimal("1.5000"), "1.50", "1.5000", 1.50000001],
            id="one-and-a-half",
        ),
        pytest.param([0.1, Decimal("0.1"), "0.10", np.float64(0.1)], id="0.1"),
        pytest.param([3, 3.0, Decimal("3"), "3", np.int64(3), "3.00000"], id="integer"),
        pytest.param([1.00005, Decimal("1.00005"), "1.00005", 1.0001], id="half-rounds-up"),
        pytest.param([-1.00005, Decimal("-1.0001"), "-1.00005"], id="half-rounds-away"),
        pytest.param([-0.00001, 0.0, Decimal("-0"), "0", 0], id="no-negative-zero"),
    ],
)
def test_numeric_spellings_of_one_value_hash_the_same(values: list[object]) -> None:
    assert len({_hash(cost=v) for v in values}) == 1
    # ... also when a whole column comes in one dtype.
    texts = {
        _column_text("cost", pd.Series(values, dtype=object))[0],
        _column_text("cost", pd.Series([values[0]]))[0],
    }
    assert len(texts) == 1


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        pytest.param(pd.Series([1.25, None, 2.0]), ["1.2500", None, "2.0000"], id="float64"),
        pytest.param(pd.Series([1, 2], dtype="Int64"), ["1.0000", "2.0000"], id="Int64"),
        pytest.param(pd.Series(["0.5", None], dtype="str"), ["0.5000", None], id="str"),
        pytest.param(
            pd.Series([Decimal("1.23456"), np.nan], dtype=object), ["1.2346", None], id="decimal"
        ),
        pytest.param(
            pd.Series([1e-30, 12345678901234.5]),
            ["0.0000", "12345678901234.5000"],
            id="tiny-and-huge",
        ),
    ],
)
def test_numeric_columns_render_at_the_column_scale(
    series: pd.Series, expected: list[str | None]
) -> None:
    assert _column_text("cost", series) == expected


def test_timestamps_render_as_the_utc_instant_at_microseconds() -> None:
    instant = datetime(2024, 3, 10, 8, 0, 0, 123456, tzinfo=UTC)
    spellings = [
        instant,
        instant.astimezone(timezone(timedelta(hours=-6))),
        pd.Timestamp(instant).tz_convert("Asia/Tokyo"),
        "2024-03-10T08:00:00.123456Z",
        "2024-03-10T09:00:00.123456+01:00",
        pd.Timestamp("2024-03-10T08:00:00.123456789Z"),  # nanoseconds are dropped
    ]
    assert len({_hash(created_at=v) for v in spellings}) == 1
    column = pd.Series(pd.to_datetime([instant], utc=True)).dt.tz_convert("US/Pacific")
    assert _column_text("created_at", column) == ["2024-03-10 08:00:00.123456"]


def test_integer_keys_render_the_same_from_int_float_and_text() -> None:
    for series in (
        pd.Series([1, 20]),
        pd.Series([1.0, 20.0]),
        pd.Series(["1", "20"]),
        pd.Series([1, 20], dtype="Int64"),
    ):
        assert _column_text("line_no", series) == ["1", "20"]
    with pytest.raises(ValueError, match="non-integral"):
        _column_text("line_no", pd.Series([1.5]))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param({"name": ""}, {"name": None}, id="empty-vs-null"),
        pytest.param({"name": "\\N"}, {"name": None}, id="null-token-vs-null"),
        pytest.param({"name": "a\tb"}, {"name": "a", "status": "b"}, id="tab-vs-next-column"),
        pytest.param({"name": "a\\tb"}, {"name": "a\tb"}, id="escaped-vs-real-tab"),
        pytest.param({"cost": 1.0001}, {"cost": 1.0002}, id="last-decimal"),
        pytest.param({"name": "e\u0301"}, {"name": "\u00e9"}, id="unicode-forms-kept-apart"),
    ],
)
def test_different_values_hash_differently(
    left: dict[str, object], right: dict[str, object]
) -> None:
    assert _hash(**left) != _hash(**right)


def test_checksum_of_hashes_is_order_independent_and_additive() -> None:
    hashes = [hashlib.md5(str(i).encode()).hexdigest() for i in range(100)]
    whole = checksum_of_hashes(hashes)
    assert whole == checksum_of_hashes(list(reversed(hashes)))
    assert whole == checksum_of_hashes(hashes[:30]) + checksum_of_hashes(hashes[30:])
    assert whole.total == sum(int(h[:8], 16) for h in hashes)
    count, text = whole
    assert (count, len(text)) == (100, 16)
    assert checksum_of_hashes([*hashes[:-1], hashes[0]]) != whole
