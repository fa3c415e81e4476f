"""Benchmark the memory and time of ``invsync export`` and ``invsync import`` (issue 13).

The guard: an export streams and an import reads in chunks, so the peak memory of either
at 1,000,000 rows must stay within 1.3x its peak at 100,000 rows, for every format.

For each backend (a throwaway PostgreSQL database, and SQLite, the default warehouse) and
each size N of ``products`` (the largest entity) it:

1. seeds the source warehouse with N products through the project's own loader
   (``warehouse.load.load_chunk`` in chunks of 20,000, the rows of
   ``benchmarks/load_paths.py``'s ``product_rows``), the cheapest way to get rows whose
   canonical text and content hashes are exactly what a sync stores;
2. for each format, runs ``invsync export products --format F --output FILE`` as a fresh
   child process (this script with ``--run-cli``: ``invsync.cli.main``, the code of this
   checkout), so its peak RSS (``VmHWM``, read by the child as it exits) is that command's
   alone, imports included;
3. runs ``invsync import products FILE --json`` on that file, again as a fresh child,
   into an **empty** target warehouse (its ``products`` emptied before each import, so every
   record is validated and inserted: the most work an import does) and checks the summary
   (every record inserted, none quarantined) and the target's row count.

Each run records its wall time, its CPU time, the file size and the 1-minute load average
before and after (other work on the machine). Compare figures as ratios within one run.

    .venv/bin/python benchmarks/formats_memory.py                        # 100k and 1M, ~18 min
    .venv/bin/python benchmarks/formats_memory.py --sizes 10000,100000   # smoke run, ~3.5 min
    .venv/bin/python benchmarks/formats_memory.py --backends sqlite --formats csv,parquet
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: make the repository importable
    sys.path.insert(0, str(ROOT))

RUN_CLI = "--run-cli"
#: Where a ``--run-cli`` child writes its peak RSS (``VmHWM``) as it exits.
PEAK_FILE_ENV = "FORMATS_MEMORY_PEAK_FILE"

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_JSON = ROOT / "benchmarks" / "formats_memory_results.json"
FORMATS = ("csv", "json", "jsonl", "xml", "parquet")
BACKENDS = ("postgres", "sqlite")
#: The guard of issue 13: peak memory at the largest size over the peak at the smallest.
FLAT_RATIO = 1.3
SEED_CHUNK = 20_000
#: Where the import goes on PostgreSQL: a schema of its own next to the source's.
TARGET_SCHEMA = "import_target"
SOURCE_SCHEMA = "inventory"


@dataclass(frozen=True)
class Warehouse:
    """A warehouse as the CLI is pointed at it (``WAREHOUSE_URL``, ``WAREHOUSE_SCHEMA``)."""

    url: str
    schema: str

    def env(self) -> dict[str, str]:
        """The environment a child ``invsync`` runs with."""
        return {"WAREHOUSE_URL": self.url, "WAREHOUSE_SCHEMA": self.schema}

    def empty_products(self) -> None:
        """Remove every product (TRUNCATE on PostgreSQL: no dead rows left behind)."""
        truncate = self.url.startswith("postgresql")
        self.execute("TRUNCATE products" if truncate else "DELETE FROM products")

    def execute(self, *statements: str) -> list[Any]:
        """Run statements in one transaction; the first value of each (None: no rows)."""
        from warehouse.db import create_warehouse_engine

        engine = create_warehouse_engine(self.url, schema=self.schema)
        try:
            with engine.begin() as conn:
                results = [conn.exec_driver_sql(s) for s in statements]
                return [r.scalar() if r.returns_rows else None for r in results]
        finally:
            engine.dispose()


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def seed(warehouse: Warehouse, n: int) -> float:
    """Empty ``products`` and load ``n`` rows through the loader; returns the seconds."""
    from benchmarks.load_paths import chunks, product_rows
    from schemas.tables import products
    from warehouse.db import create_warehouse_engine
    from warehouse.load import load_chunk

    warehouse.empty_products()
    frame = product_rows(n)
    synced_at = datetime(2025, 1, 1, tzinfo=UTC)
    engine = create_warehouse_engine(warehouse.url, schema=warehouse.schema)
    started = time.perf_counter()
    try:
        for part in chunks(frame, SEED_CHUNK):
            with engine.begin() as conn:
                load_chunk(conn, products, part, synced_at=synced_at)
    finally:
        engine.dispose()
    return time.perf_counter() - started


def run_cli(args: list[str], warehouse: Warehouse, timeout: float) -> dict[str, Any]:
    """``invsync ARGS`` in a fresh process: exit code, seconds, CPU seconds, peak RSS.

    The child is this script with ``--run-cli``: it runs ``invsync.cli.main`` and writes its
    own ``VmHWM`` to a file as it exits. Not ``ru_maxrss`` from ``wait4``: Linux carries the
    high-water mark of the process image replaced by ``exec`` (here the forking parent,
    which holds the seeded rows) into the child's, so every child would report the parent's
    peak when that is higher.
    """
    with tempfile.TemporaryDirectory(prefix="invsync-fmtrun-") as folder:
        peak_file = Path(folder) / "peak"
        env = {
            **os.environ,
            **warehouse.env(),
            "PYTHONPATH": str(ROOT),
            "PGTZ": os.environ.get("PGTZ", "UTC"),
            PEAK_FILE_ENV: str(peak_file),
        }
        command = [sys.executable, str(Path(__file__).resolve()), RUN_CLI, *args]
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        cpu = os.times()
        completed = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        seconds = time.perf_counter() - started
        after = os.times()
        peak_kb = int(peak_file.read_text()) if peak_file.exists() else 0
    if not peak_kb:
        raise RuntimeError(f"invsync {' '.join(args)} reported no peak: {completed.stderr}")
    return {
        "command": "invsync " + " ".join(args),
        "exit_code": completed.returncode,
        "seconds": seconds,
        "cpu_seconds": (after.children_user - cpu.children_user)
        + (after.children_system - cpu.children_system),
        "peak_rss_mb": peak_kb / 1024,
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "stdout": completed.stdout[-2000:],
        "stderr": completed.stderr[-2000:],
    }


def _run_cli_here(argv: list[str]) -> None:
    """The ``--run-cli`` child: ``invsync ARGV``, then its ``VmHWM`` (kB) to the peak file."""
    import atexit

    def write_peak() -> None:
        status = Path("/proc/self/status").read_text()
        peak = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        Path(os.environ[PEAK_FILE_ENV]).write_text(peak.split()[1])

    atexit.register(write_peak)
    from invsync.cli import main

    sys.argv = ["invsync", *argv]
    main()


def measure(
    backend: str, source: Warehouse, target: Warehouse, args: argparse.Namespace, folder: Path
) -> list[dict[str, Any]]:
    """Every export and import of one backend, at every size."""
    results: list[dict[str, Any]] = []
    for n in args.sizes:
        _progress(f"{backend}: seeding {n:,} products")
        seconds = seed(source, n)
        _progress(f"{backend}: seeded {n:,} products in {seconds:.1f} s")
        for fmt in args.formats:
            path = folder / f"products-{n}.{fmt}"
            _progress(f"{backend} N={n:,}: export {fmt}")
            run = run_cli(
                ["export", "products", "--format", fmt, "--output", str(path)],
                source,
                args.timeout,
            )
            if run["exit_code"] != 0:
                raise RuntimeError(f"export failed: {run['stderr']}")
            run.update(backend=backend, rows=n, format=fmt, step="export")
            run["file_mb"] = path.stat().st_size / 2**20
            results.append(run)
            _progress(f"  {run['seconds']:.1f} s, peak {run['peak_rss_mb']:.0f} MB")

            target.empty_products()
            _progress(f"{backend} N={n:,}: import {fmt} (empty products)")
            run = run_cli(["import", "products", str(path), "--json"], target, args.timeout)
            if run["exit_code"] != 0:
                raise RuntimeError(f"import failed ({run['exit_code']}): {run['stdout']}")
            summary = json.loads(run["stdout"])
            (count,) = target.execute("SELECT count(*) FROM products")
            if summary["inserted"] != n or count != n:
                raise RuntimeError(f"import of {n} rows inserted {summary['inserted']}, {count}")
            run.update(backend=backend, rows=n, format=fmt, step="import")
            run["file_mb"] = path.stat().st_size / 2**20
            results.append(run)
            _progress(f"  {run['seconds']:.1f} s, peak {run['peak_rss_mb']:.0f} MB")
            path.unlink()
    return results


@contextmanager
def warehouses(backend: str, args: argparse.Namespace) -> Iterator[tuple[Warehouse, Warehouse]]:
    """A migrated source and an empty, migrated import target on ``backend``; dropped after."""
    from benchmarks.load_paths import postgres_database
    from warehouse.migrate import upgrade

    if backend == "postgres":
        with postgres_database(args.database_url) as url:
            source, target = Warehouse(url, SOURCE_SCHEMA), Warehouse(url, TARGET_SCHEMA)
            for w in (source, target):
                upgrade(w.url, schema=w.schema)
            yield source, target
        return
    with tempfile.TemporaryDirectory(prefix="invsync-fmtbench-") as folder:
        source = Warehouse(f"sqlite:///{Path(folder) / 'source.db'}", SOURCE_SCHEMA)
        target = Warehouse(f"sqlite:///{Path(folder) / 'target.db'}", SOURCE_SCHEMA)
        for w in (source, target):
            upgrade(w.url)
        yield source, target


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Peak RSS at the largest size over the smallest, per backend, step and format."""
    out = []
    groups: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["backend"], r["step"], r["format"]), {})[r["rows"]] = r
    for (backend, step, fmt), by_size in groups.items():
        small, large = by_size[min(by_size)], by_size[max(by_size)]
        ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
        out.append(
            {
                "backend": backend,
                "step": step,
                "format": fmt,
                "sizes": [small["rows"], large["rows"]],
                "peak_rss_ratio": ratio,
                "flat": ratio <= FLAT_RATIO,
            }
        )
    return out


def table(results: list[dict[str, Any]]) -> str:
    """A plain-text table: format x size x peak RSS x seconds x ratio largest/smallest."""
    by_key = {(r["backend"], r["step"], r["format"]): r for r in ratios(results)}
    header = (
        f"{'backend':<9} {'step':<7} {'format':<8} {'rows':>10} {'file MB':>8} "
        f"{'peak MB':>8} {'seconds':>8} {'cpu s':>7} {'rows/s':>9} {'load':>9} {'ratio':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        ratio = by_key[(r["backend"], r["step"], r["format"])]
        mark = ""
        if r["rows"] == ratio["sizes"][1] and ratio["sizes"][0] != ratio["sizes"][1]:
            mark = f"{ratio['peak_rss_ratio']:.2f}" + ("" if ratio["flat"] else " !")
        load = "/".join(f"{x:.1f}" for x in r["load_average_1m"])
        lines.append(
            f"{r['backend']:<9} {r['step']:<7} {r['format']:<8} {r['rows']:>10,} "
            f"{r['file_mb']:>8.1f} {r['peak_rss_mb']:>8.0f} {r['seconds']:>8.2f} "
            f"{r['cpu_seconds']:>7.1f} {r['rows'] / r['seconds']:>9,.0f} {load:>9} {mark:>6}"
        )
    bad = [r for r in ratios(results) if not r["flat"]]
    lines.append("")
    lines.append(
        f"peak RSS ratio {max(r['rows'] for r in results):,} / {min(r['rows'] for r in results):,}"
        f" rows within {FLAT_RATIO}x: "
        + ("all flat" if not bad else "NOT flat: " + ", ".join(_name(r) for r in bad))
    )
    return "\n".join(lines)


def _name(ratio: dict[str, Any]) -> str:
    return f"{ratio['backend']} {ratio['step']} {ratio['format']} ({ratio['peak_rss_ratio']:.2f})"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (bounded, so a typo cannot start an hour-long run)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Smoke run (a few minutes): --sizes 10000,100000",
    )
    parser.add_argument(
        "--sizes", default="100000,1000000", help="comma-separated product counts, ascending"
    )
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated formats")
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated: postgres, sqlite"
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="PostgreSQL admin URL")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds allowed to one export or import"
    )
    args = parser.parse_args(argv)
    args.sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    if not args.sizes or any(not 1_000 <= n <= 2_000_000 for n in args.sizes):
        parser.error("--sizes must be between 1,000 and 2,000,000 products")
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not args.formats or set(args.formats) - set(FORMATS):
        parser.error(f"--formats takes some of {', '.join(FORMATS)}")
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not args.backends or set(args.backends) - set(BACKENDS):
        parser.error("--backends takes postgres and/or sqlite")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [RUN_CLI]:
        _run_cli_here(argv[1:])
        return 0
    from benchmarks.full_sync import machine, postgres_version

    args = parse_args(argv)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    command = " ".join([Path(sys.executable).name, *sys.argv])
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="invsync-fmtfiles-") as folder:
        for backend in args.backends:
            with warehouses(backend, args) as (source, target):
                results += measure(backend, source, target, args, Path(folder))
    info = machine()
    if "postgres" in args.backends:
        info["postgres"] = postgres_version(args.database_url)
    report = {
        "command": command,
        "started": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "import_into": "an empty products table (every record inserted)",
        "ratios": ratios(results),
        "runs": results,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    print(f"\nJSON written to {args.json}")
    return 0 if all(r["flat"] for r in report["ratios"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
