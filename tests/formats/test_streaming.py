"""Files are read a chunk at a time: what a reader holds does not grow with the file.

The benchmark of record is ``benchmarks/formats_memory.py`` (peak RSS of ``invsync import``
at 100k and 1M rows); this checks the cause it found, cheaply, in Arrow's own accounting.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from formats import read
from formats.entities import FILE_ENTITIES
from formats.export import write_parquet

PRODUCTS = FILE_ENTITIES["products"]
ROW_GROUPS, ROWS_PER_GROUP = 200, 100


def _batches() -> Iterator[Sequence[Sequence[Any]]]:
    """``ROW_GROUPS`` batches of products (``write_parquet`` makes each one row group)."""
    when = datetime(2025, 3, 1, tzinfo=UTC)
    values = {"text": lambda c, i: f"{c}-{i:06d}", "numeric": lambda c, i: Decimal(i) / 4}
    for group in range(ROW_GROUPS):
        yield [
            [
                when if kind == "datetime" else values[kind](column, i)
                for column, kind in PRODUCTS.kinds.items()
            ]
            for i in range(group * ROWS_PER_GROUP, (group + 1) * ROWS_PER_GROUP)
        ]


def test_parquet_import_holds_one_batch_not_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of one row group (the import's are 5,000 rows), so the file is many batches.
    monkeypatch.setattr(read, "CHUNK", ROWS_PER_GROUP)
    path = tmp_path / "products.parquet"
    assert write_parquet(str(path), PRODUCTS, _batches()) == ROW_GROUPS * ROWS_PER_GROUP
    before = pa.total_allocated_bytes()
    held, skus = 0, []
    for record in read.records(path, PRODUCTS, "parquet"):
        held = max(held, pa.total_allocated_bytes() - before)
        skus.append(record["sku"])
    # Every record, in file order, across the row groups.
    assert skus == [f"sku-{i:06d}" for i in range(ROW_GROUPS * ROWS_PER_GROUP)]
    # Pre-buffering (pyarrow's default) held about the whole file (the column chunks of
    # every row group) until the read ended; one batch is a small fraction of it.
    assert held < path.stat().st_size / 4, (held, path.stat().st_size)
