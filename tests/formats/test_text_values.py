"""Any text survives each text format's writer and reader unchanged (no database): the CSV
and XML escaping, quoting and line ends; and what XML cannot carry is refused, not mangled."""

from __future__ import annotations

import io
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats.entities import FILE_ENTITIES
from formats.export import ExportError, write_csv, write_json, write_jsonl, write_xml
from formats.read import records

PRODUCTS = FILE_ENTITIES["products"]
WRITERS = {"csv": write_csv, "json": write_json, "jsonl": write_jsonl, "xml": write_xml}

#: Text XML 1.0 can carry: no control characters but tab, newline and carriage return, no
#: lone surrogates. Non-empty: an empty CSV cell is null by design.
TEXT = st.text(
    st.characters(
        blacklist_categories=("Cs",), blacklist_characters=[chr(0xFFFE), chr(0xFFFF)]
    ).filter(lambda ch: ord(ch) >= 32 or ch in "\t\n\r"),
    min_size=1,
    max_size=40,
)


def _row(name: str, category: str) -> tuple[object, ...]:
    when = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    return ("S-1", "/p/1", name, None, category, Decimal("12.3400"), None, None, None, None, when)


@pytest.mark.parametrize("fmt", list(WRITERS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=TEXT, category=TEXT)
def test_any_text_survives_the_writer_and_the_reader(fmt: str, name: str, category: str) -> None:
    out = io.StringIO(newline="")
    WRITERS[fmt](out, PRODUCTS, iter([[_row(name, category)]]))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"p.{fmt}"
        path.write_text(out.getvalue(), encoding="utf-8", newline="")
        [record] = list(records(path, PRODUCTS, fmt))
    assert record["_problem"] is None
    assert (record["name"], record["category"]) == (name, category)
    assert record["last_updated_at"] == "2025-01-02T03:04:05.678901+00:00"
    assert record["status"] is None
    assert str(record["cost"]) == "12.34"


def test_xml_export_refuses_a_character_xml_cannot_carry() -> None:
    with pytest.raises(ExportError, match=r"products\.name holds a character XML 1\.0 cannot"):
        write_xml(io.StringIO(), PRODUCTS, iter([[_row("bell\x07", "x")]]))
