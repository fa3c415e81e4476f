"""The analytics hand-off: a partitioned Parquet dataset of check results and sync runs.

Layout under ``ANALYTICS_URL`` (a folder, or any pyarrow or fsspec filesystem URL such as
``s3://bucket/prefix``), Hive-style so DuckDB, pandas/pyarrow, Spark and BI tools read the
partition columns from the paths::

    dataset=dq_results/entity=<entity>/date=<YYYY-MM-DD>/part-0.parquet
    dataset=sync_runs/entity=<entity>/date=<YYYY-MM-DD>/part-0.parquet

``date`` is the UTC date of ``reported_at`` (results) or ``started_at`` (runs). A
partition file holds every row of its entity and date as the warehouse had them when it
was written: a report rewrites the partitions of the days it covers from the database
(``write_partitions``), so writing again replaces files rather than adding rows, and a
report's rows are never in two files. Columns: ``DQ_RESULTS_SCHEMA`` and
``SYNC_RUNS_SCHEMA`` (plus the partition columns ``entity`` and ``date``, strings).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import sqlalchemy as sa

from connectors.redact import mask_text, mask_url, redact_secrets, truncate
from warehouse import dq
from warehouse.runs import RunRecord, runs_started_between

#: The datasets under ``ANALYTICS_URL``.
DQ_RESULTS = "dq_results"
SYNC_RUNS = "sync_runs"

_TS = pa.timestamp("us", tz="UTC")

#: Columns of ``dataset=dq_results`` files (one row per report, entity, check, subject).
DQ_RESULTS_SCHEMA = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),
        pa.field("reported_at", _TS, nullable=False),
        pa.field("origin", pa.string(), nullable=False),
        pa.field("check_name", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("measured", pa.float64()),
        pa.field("threshold", pa.float64()),
        pa.field("passed", pa.bool_(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
    ]
)

#: Columns of ``dataset=sync_runs`` files (one row per entity run, as ``sync_runs``).
SYNC_RUNS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("flow_run_id", pa.string()),
        pa.field("mode", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("started_at", _TS, nullable=False),
        pa.field("finished_at", _TS),
        pa.field("duration_ms", pa.int64()),
        pa.field("extracted", pa.int64(), nullable=False),
        pa.field("inserted", pa.int64(), nullable=False),
        pa.field("updated", pa.int64(), nullable=False),
        pa.field("unchanged", pa.int64(), nullable=False),
        pa.field("quarantined", pa.int64(), nullable=False),
        pa.field("deleted", pa.int64(), nullable=False),
        pa.field("watermark_before", _TS),
        pa.field("watermark_after", _TS),
        pa.field("source_count", pa.int64()),
        pa.field("warehouse_count", pa.int64()),
        pa.field("reconciled", pa.bool_()),
        pa.field("error", pa.string()),
    ]
)

#: The partition columns, in path order.
PARTITION_SCHEMA = pa.schema([("entity", pa.string()), ("date", pa.string())])
PARTITIONING = ds.partitioning(PARTITION_SCHEMA, flavor="hive")

_SCHEMAS = {DQ_RESULTS: DQ_RESULTS_SCHEMA, SYNC_RUNS: SYNC_RUNS_SCHEMA}

#: Longest error text exported (the warehouse keeps the full text).
ERROR_LIMIT = 1000


class AnalyticsLocationError(Exception):
    """``ANALYTICS_URL`` names no filesystem pyarrow or fsspec can open; says which."""


@dataclass(frozen=True)
class Location:
    """An opened ``ANALYTICS_URL``: its filesystem and the root path on it.

    Attributes:
        filesystem: the pyarrow filesystem (fsspec ones wrapped).
        root: the dataset root on it.
        url: the location as a reader names it (no credentials): an absolute folder, or
            the URL.
    """

    filesystem: pafs.FileSystem
    root: str
    url: str

    def dataset_url(self, name: str) -> str:
        """Where dataset ``name`` is, as a reader names it."""
        return f"{self.url.rstrip('/')}/dataset={name}"


def open_location(url: str) -> Location:
    """Open ``ANALYTICS_URL``: a local folder (relative paths resolved now), a URL pyarrow
    knows (``file://``, ``s3://``, ``gs://``, ``hdfs://``, ``abfs://``) or any fsspec URL.

    Raises:
        AnalyticsLocationError: neither pyarrow nor fsspec knows the scheme.
    """
    if "://" not in url:
        folder = Path(url).expanduser().resolve()
        return Location(pafs.LocalFileSystem(), folder.as_posix(), folder.as_posix())
    try:
        filesystem, root = pafs.FileSystem.from_uri(url)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as arrow_error:
        try:
            import fsspec
            from fsspec.core import url_to_fs
        except ImportError:  # pragma: no cover - fsspec comes with Prefect
            raise AnalyticsLocationError(f"ANALYTICS_URL={mask_url(url)}: {arrow_error}") from None
        try:
            fs, root = url_to_fs(url)
        except (ValueError, ImportError) as exc:
            raise AnalyticsLocationError(
                f"ANALYTICS_URL={mask_url(url)}: no pyarrow or fsspec filesystem for it ({exc})"
            ) from None
        assert isinstance(fs, fsspec.AbstractFileSystem)
        filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    return Location(filesystem, root.rstrip("/") or "/", mask_url(url))


@dataclass
class Written:
    """What ``write_partitions`` did.

    Attributes:
        files: the files written, as paths on the filesystem.
        rows: rows written per dataset.
        removed: partition folders removed because no row belongs in them any more.
    """

    files: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)


def days_between(start: datetime, end: datetime) -> list[date]:
    """The UTC dates from ``start``'s to ``end``'s, inclusive."""
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def write_partitions(
    conn: sa.Connection, location: Location, days: Iterable[date], entities: Sequence[str]
) -> Written:
    """Rewrite both datasets' partitions of ``days`` from the warehouse.

    Every partition (entity, day) of each dataset is replaced by what the warehouse holds
    for it now; a partition of ``entities`` that has no rows any more is removed.

    Args:
        conn: the warehouse.
        location: the opened ``ANALYTICS_URL``.
        days: the UTC dates to rewrite.
        entities: the entities whose empty partitions of ``days`` are removed.
    """
    written = Written()
    days = sorted(set(days))
    tables = {
        DQ_RESULTS: dq_results_table([r for d in days for r in dq.results_on(conn, d)]),
        SYNC_RUNS: sync_runs_table(
            [run for d in days for run in runs_started_between(conn, *_day_bounds(d))]
        ),
    }
    for name, table in tables.items():
        base = f"{location.root}/dataset={name}"
        written.rows[name] = table.num_rows
        if table.num_rows:
            ds.write_dataset(
                table,
                base,
                filesystem=location.filesystem,
                format="parquet",
                partitioning=PARTITIONING,
                existing_data_behavior="delete_matching",
                basename_template="part-{i}.parquet",
                file_visitor=lambda f: written.files.append(f.path),
            )
        present = {
            (e, d)
            for e, d in zip(
                table.column("entity").to_pylist(), table.column("date").to_pylist(), strict=True
            )
        }
        for entity in entities:
            for day in days:
                if (entity, day.isoformat()) in present:
                    continue
                folder = f"{base}/entity={entity}/date={day.isoformat()}"
                info = location.filesystem.get_file_info(folder)
                if info.type == pafs.FileType.Directory:
                    location.filesystem.delete_dir(folder)
                    written.removed.append(folder)
    return written


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _with_partitions(schema: pa.Schema, rows: list[dict[str, Any]], when: str) -> pa.Table:
    full = schema.append(pa.field("entity", pa.string())).append(pa.field("date", pa.string()))
    for row in rows:
        row["date"] = row[when].astimezone(UTC).date().isoformat()
    return pa.Table.from_pylist(rows, schema=full)


def dq_results_table(results: Iterable[dq.StoredResult]) -> pa.Table:
    """Stored results as an Arrow table of ``DQ_RESULTS_SCHEMA`` plus entity and date."""
    rows = [
        {
            "report_id": r.report_id,
            "reported_at": r.reported_at,
            "origin": r.origin,
            "check_name": r.check,
            "subject": r.subject,
            "measured": r.measured,
            "threshold": r.threshold,
            "passed": r.passed,
            "detail": r.detail,
            "entity": r.entity,
        }
        for r in results
    ]
    return _with_partitions(DQ_RESULTS_SCHEMA, rows, "reported_at")


def sync_runs_table(runs: Iterable[RunRecord]) -> pa.Table:
    """Runs as an Arrow table of ``SYNC_RUNS_SCHEMA`` plus entity and date; errors are
    redacted, masked and cut to ``ERROR_LIMIT`` characters."""
    rows = []
    for run in runs:
        row: dict[str, Any] = {name: getattr(run, name) for name in SYNC_RUNS_SCHEMA.names}
        row["status"] = str(run.status)
        row["reconciled"] = run.reconciled
        row["error"] = (
            truncate(mask_text(redact_secrets(run.error)), ERROR_LIMIT) if run.error else None
        )
        row["entity"] = run.entity
        rows.append(row)
    return _with_partitions(SYNC_RUNS_SCHEMA, rows, "started_at")


def read_dataset(location: Location, name: str) -> pa.Table:
    """Read a whole dataset back (with its ``entity`` and ``date`` columns), for tests and
    notebooks; an absent dataset reads as an empty table."""
    schema = _SCHEMAS[name]
    full = schema.append(pa.field("entity", pa.string())).append(pa.field("date", pa.string()))
    base = f"{location.root}/dataset={name}"
    if location.filesystem.get_file_info(base).type != pafs.FileType.Directory:
        return full.empty_table()
    dataset = ds.dataset(
        base, schema=full, format="parquet", filesystem=location.filesystem,
        partitioning=PARTITIONING,
    )  # fmt: skip
    return dataset.to_table()
