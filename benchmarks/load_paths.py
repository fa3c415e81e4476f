"""Benchmark the warehouse load paths against a raw COPY of the same rows.

For N product-shaped rows, on PostgreSQL and on SQLite, it measures in one run:

1. raw bulk write of the already-rendered rows into an unindexed table (PostgreSQL:
   ``COPY``; SQLite: ``executemany`` INSERT): the bound nothing can beat;
2. ``load_chunk`` into the empty ``products`` table (all inserts);
3. ``load_chunk`` of the same rows again (all unchanged);
4. ``load_chunk`` with 10% of the rows changed.

Rows go in chunks of ``--chunk-size``, one transaction per chunk, like a sync. The timings
of 2-4 include everything ``load_chunk`` does (canonical rendering, hashing, staging,
merge). PostgreSQL runs in a database the script creates and drops itself.

Usage (from the repository root)::

    python -m benchmarks.load_paths --rows 200000
    python -m benchmarks.load_paths --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python -m benchmarks.load_paths --backends sqlite --compare-feeds
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schemas.tables import products
from warehouse import staging
from warehouse.canonical import render_rows
from warehouse.db import create_warehouse_engine, normalize_url
from warehouse.load import LoadCounts, load_chunk, stage_column
from warehouse.migrate import upgrade

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MAX_ROWS = 2_000_000


@dataclass(frozen=True)
class Timing:
    """One measured step."""

    backend: str
    step: str
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds if self.seconds else float("inf")


def product_rows(n: int, seed: int = 7) -> pd.DataFrame:
    """``n`` products shaped like the sync's (text ids and URLs, money, quantities, times)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    sku = pd.Series([f"SKU-{i:08d}" for i in ids], dtype="str")
    base = pd.Timestamp("2023-01-01", tz="UTC")
    return pd.DataFrame(
        {
            "sku": sku,
            "finale_url": "/acme/api/product/" + sku,
            "name": pd.Series([f"Widget {i} größe {i % 40}" for i in ids], dtype="str"),
            "status": np.where(ids % 17 == 0, "PRODUCT_INACTIVE", "PRODUCT_ACTIVE"),
            "category": pd.Series(
                rng.choice(["Hardware", "Garden", "Kitchen", None], n), dtype="str"
            ),
            "cost": rng.integers(1, 5_000_000, n) / 100,
            "primary_vendor_party_id": pd.Series([f"V{i % 997}" for i in ids], dtype="str"),
            "reorder_point": rng.integers(0, 500, n).astype("float64"),
            "reorder_quantity": np.where(ids % 5 == 0, np.nan, rng.integers(1, 1000, n)),
            "created_at": base + pd.to_timedelta(rng.integers(0, 10**8, n), unit="s"),
            "last_updated_at": base + pd.to_timedelta(rng.integers(10**8, 2 * 10**8, n), unit="s"),
        }
    )


def chunks(frame: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    """Consecutive slices of ``size`` rows."""
    for start in range(0, len(frame), size):
        yield frame.iloc[start : start + size]


def timed(backend: str, step: str, rows: int, work: Callable[[], object]) -> Timing:
    """Run ``work`` once and time it."""
    started = time.perf_counter()
    work()
    return Timing(backend, step, rows, time.perf_counter() - started)


def raw_table(conn: sa.Connection) -> sa.Table:
    """An unindexed copy of ``products``' columns (the raw bound's target)."""
    columns = [stage_column(c) for c in products.columns if c.name not in ("content_hash",)]
    columns = [c for c in columns if c.name not in ("deleted_at", "synced_at")]
    table = sa.Table("raw_products", sa.MetaData(), *columns, sa.Column("content_hash", sa.Text))
    table.drop(conn, checkfirst=True)
    table.create(conn)
    return table


def run_backend(
    backend: str, url: str, frame: pd.DataFrame, chunk_size: int, compare_feeds: bool
) -> list[Timing]:
    """All steps on one database (already empty)."""
    upgrade(url)
    engine = create_warehouse_engine(url)
    n = len(frame)
    results: list[Timing] = []
    try:
        # Rendering happens before the clock for the raw bound: it measures the database.
        rendered = [render_rows(products, part) for part in chunks(frame, chunk_size)]
        with engine.begin() as conn:
            raw = raw_table(conn)
        names = [*rendered[0].columns, "content_hash"]

        def raw_write() -> None:
            for part in rendered:
                with engine.begin() as conn:
                    if backend == "postgres":
                        staging.copy_text(conn, raw, names, part.copy_payload())
                    else:
                        values = [part.values[c].to_pylist() for c in part.columns]
                        rows = list(zip(*values, part.hashes.to_pylist(), strict=True))
                        staging.insert_many(conn, raw, names, rows)

        bound = "raw COPY, unindexed" if backend == "postgres" else "raw INSERT, unindexed"
        results.append(timed(backend, bound, n, raw_write))

        if compare_feeds and backend == "postgres":
            results.append(
                timed(
                    backend,
                    "  COPY fed by write_row",
                    n,
                    lambda: _write_row_feed(engine, raw, names, rendered),
                )
            )
            results.append(
                timed(
                    backend,
                    "  render+hash only",
                    n,
                    lambda: [render_rows(products, p) for p in chunks(frame, chunk_size)],
                )
            )

        def load(data: pd.DataFrame, when: datetime, expect: Callable[[LoadCounts], bool]) -> None:
            total = LoadCounts()
            for part in chunks(data, chunk_size):
                with engine.begin() as conn:
                    total += load_chunk(conn, products, part, synced_at=when)
            if not expect(total):
                raise AssertionError(f"unexpected counts {total}")

        t1, t2, t3 = (datetime(2025, 1, d, tzinfo=UTC) for d in (1, 2, 3))
        results.append(
            timed(
                backend,
                "load_chunk: all inserts",
                n,
                lambda: load(frame, t1, lambda c: c.inserted == n),
            )
        )
        results.append(
            timed(
                backend,
                "load_chunk: unchanged",
                n,
                lambda: load(frame, t2, lambda c: c.unchanged == n),
            )
        )
        changed = frame.copy()
        every_tenth = np.arange(0, n, 10)
        changed.loc[every_tenth, "cost"] = changed.loc[every_tenth, "cost"] + 1
        results.append(
            timed(
                backend,
                "load_chunk: 10% changed",
                n,
                lambda: load(changed, t3, lambda c: c.updated == len(every_tenth)),
            )
        )
    finally:
        engine.dispose()
    return results


def _write_row_feed(engine: sa.Engine, raw: sa.Table, names: list[str], rendered: list) -> None:
    """The alternative feed: psycopg ``Copy.write_row`` per row (for comparison)."""
    for part in rendered:
        columns = [part.values[c].to_pylist() for c in part.columns]
        with engine.begin() as conn:
            driver_conn = conn.connection.driver_connection
            sql = f"COPY raw_products ({', '.join(names)}) FROM STDIN"
            with driver_conn.cursor() as cursor, cursor.copy(sql) as copy:
                for row in zip(*columns, part.hashes.to_pylist(), strict=True):
                    copy.write_row(row)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """Create a throwaway database on the server of ``admin_url``; drop it afterwards."""
    admin = sa.create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"invsync_bench_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield admin.url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def report(results: list[Timing]) -> str:
    """A plain-text table: rows/s and the ratio to the backend's raw bound."""
    lines = [f"{'backend':<9} {'step':<26} {'rows':>9} {'seconds':>8} {'rows/s':>10} {'x raw':>6}"]
    bound: dict[str, float] = {}
    for t in results:
        bound.setdefault(t.backend, t.rate)
        ratio = t.rate / bound[t.backend]
        lines.append(
            f"{t.backend:<9} {t.step:<26} {t.rows:>9,} {t.seconds:>8.2f} {t.rate:>10,.0f} "
            f"{ratio:>6.2f}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (bounded, so a typo cannot start an hour-long run)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows per step (default 200000)")
    parser.add_argument(
        "--chunk-size", type=int, default=20_000, help="rows per load_chunk call (default 20000)"
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="PostgreSQL server to create the benchmark database on (admin URL)",
    )
    parser.add_argument(
        "--backends", default="postgres,sqlite", help="comma-separated: postgres, sqlite"
    )
    parser.add_argument(
        "--compare-feeds",
        action="store_true",
        help="also time COPY fed row by row (psycopg write_row), and rendering alone",
    )
    args = parser.parse_args(argv)
    if not 1_000 <= args.rows <= MAX_ROWS:
        parser.error(f"--rows must be between 1000 and {MAX_ROWS:,}")
    if not 100 <= args.chunk_size <= args.rows:
        parser.error("--chunk-size must be between 100 and --rows")
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not args.backends or set(args.backends) - {"postgres", "sqlite"}:
        parser.error("--backends takes postgres and/or sqlite")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    args = parse_args(argv)
    frame = product_rows(args.rows)
    print(f"{args.rows:,} product rows, chunks of {args.chunk_size:,}", flush=True)
    results: list[Timing] = []
    if "postgres" in args.backends:
        with postgres_database(args.database_url) as url:
            results += run_backend("postgres", url, frame, args.chunk_size, args.compare_feeds)
    if "sqlite" in args.backends:
        with tempfile.TemporaryDirectory(prefix="invsync-bench-") as folder:
            url = f"sqlite:///{Path(folder) / 'warehouse.db'}"
            results += run_backend("sqlite", url, frame, args.chunk_size, args.compare_feeds)
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
