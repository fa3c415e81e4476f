"""Files people really send: spreadsheet CSV dialects, truncated files, wrong columns, wrong
types and hostile XML. Each is loaded, quarantined with its reasons, or refused with an
error naming the file and what to do; nothing is lost and nothing half-parsed is loaded."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from format_seed import table_rows, write_file

from formats.entities import FILE_ENTITIES
from formats.imports import ImportSummary, import_file
from formats.read import FileFormatError
from schemas import tables

PRODUCTS = FILE_ENTITIES["products"]
HEADER = ";".join(PRODUCTS.columns)


@pytest.fixture
def engine(new_warehouse: Callable[[str], sa.Engine]) -> sa.Engine:
    return new_warehouse("sqlite")


def _import(engine: sa.Engine, path: Path, fmt: str, name: str = "products") -> ImportSummary:
    return import_file(engine, FILE_ENTITIES[name], path, fmt)


def _skus(engine: sa.Engine) -> list[str]:
    return [row[0] for row in table_rows(engine, tables.products)]


def _quarantine(engine: sa.Engine) -> list[tuple[str | None, str]]:
    q = tables.quarantine
    with engine.connect() as conn:
        query = sa.select(q.c.source_key, q.c.reasons).where(q.c.resolved_at.is_(None))
        return [tuple(r) for r in conn.execute(query.order_by(q.c.id))]  # type: ignore[misc]


def _product(sku: str, **values: str) -> str:
    row = {c: "" for c in PRODUCTS.columns}
    row.update(
        sku=sku, finale_url=f"/p/{sku}", name=f"Name {sku}", last_updated_at="2025-01-02T10:00:00Z"
    )
    row.update(values)
    return ";".join(row[c] for c in PRODUCTS.columns)


def test_spreadsheet_csv_with_bom_semicolons_quotes_and_newlines_loads(
    engine: sa.Engine, tmp_path: Path
) -> None:
    text = (
        HEADER + "\r\n"
        + _product("A-1", name='"Bolt; M6 ""zinc""\nbox of 100"', cost="1,5".replace(",", "."))
        + "\r\n" + _product("A-2", category="Ärger", cost="1200") + "\r\n"
    )  # fmt: skip
    summary = _import(engine, write_file(tmp_path / "p.csv", text, "utf-8-sig"), "csv")
    assert (summary.read, summary.inserted, summary.quarantined) == (2, 2, 0)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(tables.products.c.sku, tables.products.c.name, tables.products.c.cost)
        ).all()
    assert [(s, n, float(c)) for s, n, c in rows] == [
        ("A-1", 'Bolt; M6 "zinc"\nbox of 100', 1.5),
        ("A-2", "Name A-2", 1200.0),
    ]


@pytest.mark.parametrize(
    ("head", "delimiter"),
    [pytest.param("", "\t", id="tab"), pytest.param("sep=|\r\n", "|", id="excel-sep-line")],
)
def test_other_spreadsheet_delimiters_load(
    engine: sa.Engine, tmp_path: Path, head: str, delimiter: str
) -> None:
    text = head + f"{HEADER}\n{_product('N-1', category='a,b;c')}\n".replace(";", delimiter)
    text = text.replace(f"a,b{delimiter}c", "a,b;c")
    summary = _import(engine, write_file(tmp_path / "p.csv", text), "csv")
    assert (summary.inserted, summary.quarantined) == (1, 0), summary.refused
    with engine.connect() as conn:
        assert conn.execute(sa.select(tables.products.c.category)).scalar_one() == "a,b;c"


def test_csv_with_wrong_columns_is_refused_naming_them_and_loads_nothing(
    engine: sa.Engine, tmp_path: Path
) -> None:
    path = write_file(tmp_path / "p.csv", "sku,title,cost\nA-1,Bolt,1\n")
    with pytest.raises(FileFormatError) as caught:
        _import(engine, path, "csv")
    message = str(caught.value)
    assert "missing finale_url, name" in message and "unknown title" in message
    assert "expected sku, finale_url, name" in message
    assert _skus(engine) == []


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        pytest.param(
            _product("B-2", cost="12x"), "cost (field cost) is not a finite number", id="number"
        ),
        pytest.param(
            _product("B-2", last_updated_at="yesterday"),
            "last_updated_at (field last_updated_at) is not an ISO 8601 timestamp",
            id="timestamp",
        ),
        pytest.param(_product("B-2", status="ON_SALE"), "status must be one of", id="schema"),
        pytest.param(
            _product("B-2", cost="1.23456"), "cost has more than 4 decimal places", id="decimals"
        ),
        pytest.param("B-2;/p/B-2;Name", "line 3: has 3 fields, the header has 11", id="truncated"),
    ],
)
def test_a_bad_row_is_quarantined_with_its_reason_and_the_rest_loads(
    engine: sa.Engine, tmp_path: Path, row: str, reason: str
) -> None:
    text = f"{HEADER}\n{_product('B-1')}\n{row}\n{_product('B-3')}\n"
    summary = _import(engine, write_file(tmp_path / "p.csv", text), "csv")
    assert (summary.read, summary.inserted, summary.quarantined) == (3, 2, 1)
    assert _skus(engine) == ["B-1", "B-3"]
    [(key, reasons)] = _quarantine(engine)
    assert key == "B-2" and reason in reasons
    assert summary.refused == [{"key": "B-2", "reasons": reasons}]


def test_a_fixed_file_resolves_its_quarantine_entry(engine: sa.Engine, tmp_path: Path) -> None:
    bad = f"{HEADER}\n{_product('C-1', cost='abc')}\n"
    assert _import(engine, write_file(tmp_path / "p.csv", bad), "csv").quarantined == 1
    good = f"{HEADER}\n{_product('C-1', cost='3')}\n"
    assert _import(engine, write_file(tmp_path / "p.csv", good), "csv").inserted == 1
    assert _quarantine(engine) == [] and _skus(engine) == ["C-1"]


def test_csv_truncated_inside_a_quoted_cell_is_refused(engine: sa.Engine, tmp_path: Path) -> None:
    text = f"{HEADER}\n{_product('D-1')}\n{_product('D-2', name=chr(34) + 'half a na')}"
    with pytest.raises(
        FileFormatError, match=r"line 3: .*never closed: the file looks damaged or truncated"
    ):
        _import(engine, write_file(tmp_path / "p.csv", text), "csv")
    assert _skus(engine) == []  # the chunk never committed: nothing half-loaded


def _json_product(sku: str, **values: object) -> dict[str, object]:
    return {"sku": sku, "finale_url": f"/p/{sku}", "name": f"Name {sku}", **values}


def test_truncated_json_array_is_refused_and_loads_nothing(
    engine: sa.Engine, tmp_path: Path
) -> None:
    text = json.dumps([_json_product("E-1"), _json_product("E-2")])[:-20]
    with pytest.raises(
        FileFormatError, match=r"after item 1 .*looks truncated.*nothing was loaded"
    ):
        _import(engine, write_file(tmp_path / "p.json", text), "json")
    assert _skus(engine) == []


def test_damage_after_a_committed_chunk_says_what_was_committed(
    engine: sa.Engine, tmp_path: Path
) -> None:
    when = "2025-01-02T00:00:00Z"
    items = [_json_product(f"L-{i}", last_updated_at=when) for i in range(1, 6)]
    path = write_file(tmp_path / "p.json", json.dumps(items)[:-30])
    with pytest.raises(FileFormatError) as caught:
        import_file(engine, PRODUCTS, path, "json", chunk_size=2)
    assert "the 2 record(s) before it were committed (loaded 2, unchanged 0" in str(caught.value)
    assert _skus(engine) == ["L-1", "L-2"]
    with engine.connect() as conn:
        status = conn.execute(sa.select(tables.sync_runs.c.status)).scalar_one()
    assert status == "failed"


def test_jsonl_bad_lines_and_wrong_types_are_quarantined(engine: sa.Engine, tmp_path: Path) -> None:
    lines = [
        json.dumps(_json_product("F-1", cost=2.5)),
        '{"sku": "F-2", "finale_url": ',  # a line cut short
        json.dumps(_json_product("F-3", cost="two")),
        json.dumps(_json_product("F-4", colour="red")),
        json.dumps(["not", "an", "object"]),
    ]
    summary = _import(engine, write_file(tmp_path / "p.jsonl", "\n".join(lines)), "jsonl")
    assert (summary.read, summary.inserted, summary.quarantined) == (5, 1, 4)
    entries = _quarantine(engine)
    for key, reason in [
        ("F-3", "cost (field cost) is not a finite number (got 'two')"),
        (None, "line 2: is not valid JSON (Expecting value)"),
        ("F-4", "line 4: has fields the products contract does not know: colour"),
        (None, "line 5: is not a JSON object (a list)"),
    ]:
        assert [k for k, r in entries if reason in r] == [key], reason
    assert _skus(engine) == ["F-1"]


def test_xml_nil_and_absent_elements_are_null(engine: sa.Engine, tmp_path: Path) -> None:
    xml = (
        '<products xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<product><sku>G-1</sku><finale_url>/p/G-1</finale_url><name>G</name>"
        '<category xsi:nil="true"/><cost>4.25</cost></product></products>'
    )
    summary = _import(engine, write_file(tmp_path / "p.xml", xml), "xml")
    assert summary.inserted == 1
    with engine.connect() as conn:
        row = conn.execute(sa.select(tables.products.c.category, tables.products.c.cost)).one()
    assert row[0] is None and float(row[1]) == 4.25


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<products><product><sku>H-1</sku><finale_url>/p/H-1</finale_url><name>&lol4;</name></product>
</products>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE products [<!ENTITY secret SYSTEM "file://{path}">]>
<products><product><sku>H-1</sku><finale_url>/p/H-1</finale_url><name>&secret;</name></product>
</products>"""


@pytest.mark.parametrize("hostile", ["billion_laughs", "external_entity"])
def test_hostile_xml_is_refused_before_anything_is_read(
    engine: sa.Engine, tmp_path: Path, hostile: str
) -> None:
    secret = write_file(tmp_path / "secret.txt", "TOP-SECRET")
    text = BILLION_LAUGHS if hostile == "billion_laughs" else EXTERNAL_ENTITY.format(path=secret)
    with pytest.raises(FileFormatError, match="entities are never expanded"):
        _import(engine, write_file(tmp_path / "p.xml", text), "xml")
    assert _skus(engine) == [] and _quarantine(engine) == []


def test_truncated_xml_is_refused(engine: sa.Engine, tmp_path: Path) -> None:
    xml = "<products><product><sku>I-1</sku><finale_url>/p/I-1</finale_url><name>I</nam"
    with pytest.raises(FileFormatError, match="not well-formed XML"):
        _import(engine, write_file(tmp_path / "p.xml", xml), "xml")
    assert _skus(engine) == []


def test_xml_with_another_root_is_refused(engine: sa.Engine, tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="root element is <vendors>, expected <products>"):
        _import(engine, write_file(tmp_path / "p.xml", "<vendors/>"), "xml")


def test_parquet_with_wrong_columns_is_refused(engine: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pandas(pd.DataFrame({"sku": ["J-1"], "price": [1.0]})), path)
    with pytest.raises(FileFormatError, match="missing finale_url"):
        _import(engine, path, "parquet")
    assert _skus(engine) == []


def test_not_utf8_is_refused_with_what_to_do(engine: sa.Engine, tmp_path: Path) -> None:
    text = f"{HEADER}\n{_product('K-1', name='Größe')}\n"
    with pytest.raises(FileFormatError, match=r"not UTF-8 .*save the file as UTF-8"):
        _import(engine, write_file(tmp_path / "p.csv", text, "cp1252"), "csv")


def test_a_key_twice_in_a_file_is_quarantined_not_merged(engine: sa.Engine, tmp_path: Path) -> None:
    text = f"{HEADER}\n{_product('M-1', cost='1')}\n{_product('M-1', cost='2')}\n"
    summary = _import(engine, write_file(tmp_path / "p.csv", text), "csv")
    assert summary.read == 2
    assert (summary.read, summary.inserted, summary.quarantined) == (2, 0, 2)
    assert [r["reasons"] for r in summary.refused] == [
        "key sku appears more than once in this read (got 'M-1', 2 records); none of them is loaded"
    ] * 2
    assert _skus(engine) == []
