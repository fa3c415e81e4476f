"""``invsync export`` and ``invsync import`` from the command line: output, summaries and
exit codes (0 all loaded, 1 some quarantined, 2 bad arguments or an unreadable file)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from format_seed import SEED, seed, table_rows
from typer.testing import CliRunner

from invsync.cli import app
from schemas import tables
from warehouse import load


@pytest.fixture(scope="module")
def source(new_warehouse: Callable[[str], sa.Engine]) -> sa.Engine:
    engine = new_warehouse("sqlite")
    seed(engine)
    return engine


def _run(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, *args: str) -> object:
    monkeypatch.setenv("WAREHOUSE_URL", engine.url.render_as_string(hide_password=False))
    return CliRunner().invoke(app, list(args))


def test_export_to_stdout_then_import_with_a_json_summary(
    source: sa.Engine,
    new_warehouse: Callable[[str], sa.Engine],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    exported = _run(source, monkeypatch, "export", "vendors", "--format", "jsonl")
    assert exported.exit_code == 0, exported.output
    assert [json.loads(line)["party_id"] for line in exported.stdout.splitlines()] == ["V1", "V2"]
    assert "exported 2 vendors row(s) as jsonl" in exported.stderr

    path = tmp_path / "vendors.jsonl"
    path.write_text(exported.stdout, encoding="utf-8")
    target = new_warehouse("sqlite")
    imported = _run(target, monkeypatch, "import", "vendors", str(path), "--json")
    assert imported.exit_code == 0, imported.output
    summary = json.loads(imported.stdout)
    assert (summary["format"], summary["loaded"], summary["quarantined"]) == ("jsonl", 2, 0)
    assert table_rows(target, tables.vendors) == table_rows(source, tables.vendors)


def test_export_parquet_to_a_file(
    source: sa.Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "stock.parquet"
    result = _run(source, monkeypatch, "export", "stock", "-f", "parquet", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).num_rows == len(SEED["stock_levels"])


def test_import_with_quarantined_rows_exits_1_and_says_why(
    new_warehouse: Callable[[str], sa.Engine], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "facilities.csv"
    path.write_text(
        "facility_id,facility_url,name,parent_facility_id,status,last_updated_at\n"
        "F1,/f/1,Main,,,2025-01-01T00:00:00Z\n"
        "F2,/f/2,,,,2025-01-01T00:00:00Z\n",
        encoding="utf-8",
    )
    result = _run(new_warehouse("sqlite"), monkeypatch, "import", "facilities", str(path))
    assert result.exit_code == 1, result.output
    assert "loaded 1 (inserted 1, updated 0), unchanged 0, quarantined 1" in result.stdout
    assert "refused F2: name is missing" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["export", "widgets"], "unknown entity 'widgets'; choose from", id="entity"),
        pytest.param(
            ["export", "stock", "-f", "yaml"], "--format 'yaml' is not a format", id="fmt"
        ),
        pytest.param(["export", "stock", "-f", "parquet"], "give --output PATH", id="parquet"),
        pytest.param(
            ["export", "stock", "--since", "2025-01-01"],
            "--since cannot filter stock: its table (stock_levels) has no last_updated_at",
            id="since",
        ),
        pytest.param(
            ["import", "products", "products.txt"], "pass --format (csv, json", id="extension"
        ),
        pytest.param(["import", "products", "nothing.csv"], "nothing.csv: no such file", id="file"),
    ],
)
def test_bad_arguments_exit_2_naming_what_to_fix(
    source: sa.Engine, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    result = _run(source, monkeypatch, *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())


def test_hostile_xml_exits_2_and_loads_nothing(
    source: sa.Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "products.xml"
    path.write_text(
        '<!DOCTYPE products [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<products><product><sku>X</sku><name>&x;</name></product></products>",
        encoding="utf-8",
    )
    before = table_rows(source, tables.products)
    result = _run(source, monkeypatch, "import", "products", str(path))
    assert result.exit_code == 2
    assert "entities are never expanded" in result.stderr
    assert table_rows(source, tables.products) == before


def test_an_export_that_fails_leaves_no_file_behind(
    new_warehouse: Callable[[str], sa.Engine], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = new_warehouse("sqlite")
    frame = SEED["vendors"].copy()
    frame.loc[1, "name"] = "bell\x07"
    with engine.begin() as conn:
        load.load_chunk(conn, tables.vendors, frame, synced_at=datetime.now(UTC))
    out = tmp_path / "vendors.xml"
    result = _run(engine, monkeypatch, "export", "vendors", "-f", "xml", "-o", str(out))
    assert result.exit_code == 1
    assert "vendors.name holds a character XML 1.0 cannot carry" in result.stderr
    assert not out.exists()


def test_the_cli_names_the_same_entities_and_formats_as_the_package() -> None:
    from formats.entities import FILE_ENTITIES
    from formats.export import FORMATS
    from invsync.cli import FILE_ENTITY_NAMES, FILE_FORMATS

    assert tuple(FILE_ENTITIES) == FILE_ENTITY_NAMES
    assert FORMATS == FILE_FORMATS
