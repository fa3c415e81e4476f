"""Benchmark a full sync end to end: sandbox -> connector -> transform -> warehouse.

For each account size N (default 100,000 and 1,000,000 products) it:

1. starts the Finale sandbox as its own process (``python -m sandbox``, rate limit off), so
   the server's memory and CPU are not counted as the pipeline's, generates the account and
   warms the page cache by reading every product page once, as the connector will ask for it;
2. creates a throwaway PostgreSQL database (dropped at the end) and a temporary SQLite file;
3. runs each measurement in a fresh child process, so each peak RSS (``VmHWM``) is that one
   measurement's, imports included:

   - ``full-pg``: full sync of ``products`` into PostgreSQL (empty table; ``facilities`` and
     ``vendors`` synced first, untimed, as the entity's dependencies);
   - ``incremental-pg``: the scheduled incremental sync right after it (nothing changed:
     rows written, inserted + updated, must be 0);
   - ``reread-pg``: an incremental sync whose ``since`` lies before every record, so every
     product is read, transformed and compared again and none is written (the worst case of
     "no change");
   - ``copy-bound``: the raw COPY bound (below);
   - ``full-sqlite``: full sync of ``products`` into SQLite (same dependencies first);

4. at ``--all-entities-at`` (default 100,000) it also syncs the whole account (every entity,
   in dependency order) into a fresh PostgreSQL database.

**The bound.** After ``full-pg`` the ``products`` table holds the final warehouse rows.
``copy-bound`` reads them back as COPY text (untimed), then times ``COPY ... FROM STDIN`` of
exactly those bytes into ``products_copy``, created ``LIKE products INCLUDING ALL`` (same
columns, types, NOT NULLs, primary key), in pieces of ``--chunk-size`` rows, one transaction
each, as the sync commits. It is a fair ceiling: the database does the same work it must do
for the sync's rows (parse, type input, WAL, heap, primary-key index) and nothing else, with
no HTTP, JSON, pandas, validation, hashing or upsert logic. Nothing the pipeline does can be
faster, so ``sync records/s / bound records/s`` is the share of the ceiling reached. The same
bytes are also COPY'd into an unindexed table (``LIKE products`` without indexes) and in
one single COPY statement, for reference. All figures of one N come from one run on one
machine, so their ratios are comparable; absolute numbers vary with the machine and its load.

**Rounds.** The full sync and the bound are then measured again, ``--repeat`` rounds in all
(default 3; ``products`` is emptied before each further full sync). Each round gives one
ratio; the headline is their median, and every ratio is printed and kept in the JSON.

A script, not a test: bounded by ``--budget`` seconds, prints a table and writes JSON.

    .venv/bin/python benchmarks/full_sync.py                        # 100k and 1M, ~15 min
    .venv/bin/python benchmarks/full_sync.py --sizes 100000 --json /tmp/full_sync.json
    .venv/bin/python benchmarks/full_sync.py --database-url postgresql://postgres@127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: make the repository importable
    sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_JSON = ROOT / "benchmarks" / "full_sync_results.json"
SEED = 42
#: Before every generated lastUpdatedDate (the sandbox dates lie in the two years before
#: its anchor, 2026-10-01): an incremental read from here sees every record.
REREAD_SINCE = datetime(2024, 9, 1, tzinfo=UTC)
RESULT_MARK = "FULL_SYNC_RESULT "
API_KEY, API_SECRET = "sandbox-key", "sandbox-secret"


# --- measurements (run in a child process each) ---------------------------------------------


def _memory() -> dict[str, float]:
    """Current and peak RSS of this process in MB (Linux ``/proc/self/status``)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "peak_rss_mb": int(fields["VmHWM"].split()[0]) / 1024,
    }


def _client(base_url: str, max_entities: int) -> Any:
    from pydantic import SecretStr

    from connectors.finale import FinaleClient
    from connectors.finale.settings import FinaleSettings

    settings = FinaleSettings(
        base_url=base_url,
        account="acme",
        api_key=API_KEY,
        api_secret=SecretStr(API_SECRET),
        rate_limit_per_minute=1e9,  # the sandbox's limit is off; so is ours, in effect
        timeout_seconds=600.0,
        max_entities_per_response=max_entities,
    )
    return FinaleClient(settings)


def _sync(
    entity: str,
    base_url: str,
    db_url: str,
    *,
    mode: str,
    chunk_size: int,
    max_entities: int,
    prefetch: int | None = None,
    since: datetime | None = None,
) -> dict[str, Any]:
    """One entity run through ``EntitySync``; returns its counts and wall time."""
    from pipeline.entities import ENTITIES
    from pipeline.sync import EntitySync, SyncOptions
    from warehouse.db import create_warehouse_engine

    engine = create_warehouse_engine(db_url)
    options = SyncOptions(mode=mode, chunk_size=chunk_size, since=since)
    if prefetch is not None:
        options = dataclasses.replace(options, prefetch=prefetch)
    try:
        with _client(base_url, max_entities) as client:
            started, cpu = time.perf_counter(), time.process_time()
            with EntitySync(
                ENTITIES[entity], client, engine, run_id=str(uuid.uuid4()), options=options
            ) as sync:
                for chunk in sync.chunks():
                    sync.process(chunk)
                result = sync.finish()
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
    finally:
        engine.dispose()
    return {
        "entity": entity,
        "mode": mode,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "status": result.status,
        "extracted": result.extracted,
        "inserted": result.inserted,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "quarantined": result.quarantined,
        "deleted": result.deleted,
        "chunks": result.chunks,
        "rows_written": result.inserted + result.updated,
        "records_per_second": result.extracted / seconds if seconds else None,
        "reconciled": result.source_checksum == result.warehouse_checksum
        if result.source_checksum is not None
        else None,
    }


def _copy_bound(db_url: str, chunk_size: int) -> dict[str, Any]:
    """Time a raw COPY of the final ``products`` rows into identically defined tables."""
    import psycopg

    from warehouse.db import DEFAULT_SCHEMA, normalize_url

    url = normalize_url(db_url).set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
    # The warehouse's tables are in its schema (WAREHOUSE_SCHEMA, the default here).
    with psycopg.connect(dsn, options=f"-c search_path={DEFAULT_SCHEMA}") as conn:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS products_copy, products_copy_unindexed")
            cur.execute("CREATE TABLE products_copy (LIKE products INCLUDING ALL)")
            cur.execute("CREATE TABLE products_copy_unindexed (LIKE products)")
            columns = ", ".join(
                row[0]
                for row in cur.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = 'products'::regclass "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
                )
            )
        conn.commit()
        # Untimed: the rows as COPY text, split into pieces of chunk_size rows.
        pieces: list[bytes] = []
        lines: list[bytes] = []
        rows = 0
        with conn.cursor() as cur, cur.copy(f"COPY products ({columns}) TO STDOUT") as copy:
            buffer = b"".join(bytes(block) for block in copy)
        conn.commit()
        for line in buffer.splitlines(keepends=True):
            lines.append(line)
            rows += 1
            if len(lines) == chunk_size:
                pieces.append(b"".join(lines))
                lines = []
        if lines:
            pieces.append(b"".join(lines))
        del buffer, lines

        def copy_into(table: str, parts: list[bytes]) -> float:
            started = time.perf_counter()
            for part in parts:
                with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as cp:
                    cp.write(part)
                conn.commit()
            return time.perf_counter() - started

        def truncate(table: str) -> None:
            conn.execute(f"TRUNCATE {table}")
            conn.commit()

        chunked = copy_into("products_copy", pieces)
        truncate("products_copy")
        single = copy_into("products_copy", [b"".join(pieces)])
        unindexed = copy_into("products_copy_unindexed", pieces)
        conn.execute("DROP TABLE products_copy, products_copy_unindexed")
        conn.commit()
    return {
        "rows": rows,
        "bytes": sum(len(p) for p in pieces),
        "seconds": chunked,
        "records_per_second": rows / chunked,
        "single_copy_seconds": single,
        "single_copy_records_per_second": rows / single,
        "unindexed_seconds": unindexed,
        "unindexed_records_per_second": rows / unindexed,
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement (``spec["task"]``) in this process and return its figures."""
    before = _memory()
    load_before = os.getloadavg()[0]
    task = spec["task"]
    common = {
        "chunk_size": spec["chunk_size"],
        "max_entities": spec["max_entities"],
        "prefetch": spec.get("prefetch"),
    }
    out: dict[str, Any] = {"task": task}
    if task in ("setup", "all"):
        from pipeline.entities import ENTITIES

        names = ["facilities", "vendors"] if task == "setup" else list(ENTITIES)
        runs = [
            _sync(name, spec["base_url"], spec["db_url"], mode="full", **common) for name in names
        ]
        out["entities"] = runs
        out["seconds"] = sum(r["seconds"] for r in runs)
        out["extracted"] = sum(r["extracted"] for r in runs)
        out["records_per_second"] = out["extracted"] / out["seconds"]
    elif task in ("full", "incremental", "reread"):
        mode = "full" if task == "full" else "incremental"
        since = REREAD_SINCE if task == "reread" else None
        out.update(
            _sync("products", spec["base_url"], spec["db_url"], mode=mode, since=since, **common)
        )
    elif task == "copy-bound":
        out.update(_copy_bound(spec["db_url"], spec["chunk_size"]))
    else:
        raise ValueError(f"unknown task {task!r}")
    out["rss_before_mb"] = before["rss_mb"]
    out["load_average_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    out.update(_memory())
    return out


# --- orchestration ----------------------------------------------------------------------------


@dataclass
class Budget:
    """The whole run's deadline."""

    deadline: float

    def left(self) -> float:
        """Seconds left; raises when none."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("benchmark budget exhausted")
        return remaining


@dataclass
class SizeResult:
    """Every figure measured at one account size."""

    products: int
    sandbox: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)


def child(spec: dict[str, Any], budget: Budget) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=budget.left()
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{spec['task']} failed:\n{completed.stderr[-4000:]}")
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            result["process_seconds"] = time.perf_counter() - started
            return result
    raise RuntimeError(f"{spec['task']} printed no result:\n{completed.stdout[-2000:]}")


@contextmanager
def sandbox_process(products: int, max_entities: int, budget: Budget) -> Iterator[str]:
    """``python -m sandbox`` on a free port, rate limit off; yields its base URL."""
    command = [
        sys.executable,
        "-m",
        "sandbox",
        "--port=0",
        f"--products={products}",
        f"--seed={SEED}",
        "--rate-limit-per-minute=0",
        f"--max-entities={max_entities}",
        f"--cache-bytes={6 << 30}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url = ""
        while not base_url and budget.left():
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("the sandbox exited before announcing its URL")
            if line.startswith("Finale sandbox listening on "):
                base_url = line.split()[-1]
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def warm_sandbox(
    base_url: str, page_size: int, collections: list[str], budget: Budget
) -> dict[str, Any]:
    """Generate the account and read each collection once, in the connector's pages."""
    import httpx

    from sandbox.control import SandboxControl

    timeout = httpx.Timeout(budget.left())
    with SandboxControl(base_url, httpx.Client(timeout=timeout)) as control:
        started = time.perf_counter()
        info = control.info()  # generates every collection
        generation = time.perf_counter() - started
    pages = 0
    started = time.perf_counter()
    with httpx.Client(
        base_url=f"{base_url}/acme/api", auth=(API_KEY, API_SECRET), timeout=timeout
    ) as http:
        for collection in collections:
            offset = 0
            while budget.left():
                response = http.get(
                    f"/{collection}/", params={"limit": page_size, "offset": offset}
                )
                response.raise_for_status()
                count = len(next(iter(response.json().values()), []))
                pages += 1
                offset += count
                if count < page_size:
                    break
    return {
        "counts": info["counts"],
        "generation_seconds": generation,
        "warm_pages": pages,
        "warm_seconds": time.perf_counter() - started,
    }


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A throwaway database on the server of ``admin_url``, dropped afterwards."""
    import sqlalchemy as sa

    from warehouse.db import normalize_url

    admin = sa.create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"invsync_fullsync_{uuid.uuid4().hex[:10]}"
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


def _forget_products(db_url: str) -> None:
    """Empty ``products`` and its sync state, so the next full sync starts as the first did."""
    from warehouse.db import create_warehouse_engine

    engine = create_warehouse_engine(db_url)  # the warehouse's schema, not public
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE products")
            conn.exec_driver_sql("DELETE FROM sync_state WHERE entity = 'products'")
    finally:
        engine.dispose()


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure_size(products: int, args: argparse.Namespace, budget: Budget) -> SizeResult:
    """Every measurement at one account size."""
    from warehouse.migrate import upgrade

    page = min(args.chunk_size, args.max_entities)
    result = SizeResult(products)
    all_entities = products == args.all_entities_at
    with sandbox_process(products, args.max_entities, budget) as base_url:
        collections = ["facility", "partygroup", "product"]
        if all_entities:
            collections += ["inventoryitem", "order"]
        _progress(f"N={products:,}: sandbox at {base_url}; generating and warming")
        result.sandbox = warm_sandbox(base_url, page, collections, budget)
        base = {
            "base_url": base_url,
            "chunk_size": args.chunk_size,
            "max_entities": args.max_entities,
            "prefetch": args.prefetch,
        }
        with postgres_database(args.database_url) as db_url:
            upgrade(db_url)
            spec = {**base, "db_url": db_url}
            for task in ("setup", "full", "incremental", "reread", "copy-bound"):
                if task == "reread" and args.skip_reread:
                    continue
                _progress(f"N={products:,}: {task} (PostgreSQL)")
                result.runs[f"{task}-pg"] = child({**spec, "task": task}, budget)
            # Both figures move with whatever else the machine does: repeat the pair and
            # report every ratio, each taken within its own round.
            for round_no in range(2, args.repeat + 1):
                _progress(f"N={products:,}: full and copy-bound, round {round_no} (PostgreSQL)")
                _forget_products(db_url)
                for task in ("full", "copy-bound"):
                    result.runs[f"{task}-pg#{round_no}"] = child({**spec, "task": task}, budget)
        if not args.skip_sqlite:
            with tempfile.TemporaryDirectory(prefix="invsync-fullsync-") as folder:
                db_url = f"sqlite:///{Path(folder) / 'warehouse.db'}"
                upgrade(db_url)
                spec = {**base, "db_url": db_url}
                for task in ("setup", "full"):
                    _progress(f"N={products:,}: {task} (SQLite)")
                    result.runs[f"{task}-sqlite"] = child({**spec, "task": task}, budget)
        if all_entities:
            with postgres_database(args.database_url) as db_url:
                upgrade(db_url)
                _progress(f"N={products:,}: all entities (PostgreSQL)")
                spec = {**base, "db_url": db_url, "task": "all"}
                result.runs["all-pg"] = child(spec, budget)
    return result


# --- report ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU, cores, RAM, Python and PostgreSQL versions of this run."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def postgres_version(admin_url: str) -> str:
    """``SHOW server_version`` of the benchmark server."""
    import sqlalchemy as sa

    from warehouse.db import normalize_url

    engine = sa.create_engine(normalize_url(admin_url))
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("SHOW server_version").scalar())
    finally:
        engine.dispose()


def summarize(size: SizeResult) -> dict[str, Any]:
    """The headline figures of one size (ratios computed within the run)."""
    runs = size.runs
    out: dict[str, Any] = {"products": size.products}
    # Each round's full sync with the bound measured right after it. Both wrote the same
    # rows (the bound copies what the sync stored), so the share of the bound reached is
    # the ratio of their times.
    rounds = [
        (runs[name], runs[name.replace("full-pg", "copy-bound-pg")])
        for name in runs
        if name.startswith("full-pg") and name.replace("full-pg", "copy-bound-pg") in runs
    ]
    if rounds:
        fulls = [full for full, _ in rounds]
        out["rounds"] = len(rounds)
        out["full_pg_records_per_second"] = [f["records_per_second"] for f in fulls]
        out["copy_bound_records_per_second"] = [b["records_per_second"] for _, b in rounds]
        for key, bound_key in (
            ("ratio_to_copy", "seconds"),
            ("ratio_to_single_copy", "single_copy_seconds"),
            ("ratio_to_unindexed_copy", "unindexed_seconds"),
        ):
            ratios = sorted(b[bound_key] / f["seconds"] for f, b in rounds)
            out[key] = statistics.median(ratios)
            out[f"{key}_each"] = ratios
        out["full_pg_peak_rss_mb"] = max(f["peak_rss_mb"] for f in fulls)
    if "incremental-pg" in runs:
        inc = runs["incremental-pg"]
        out["incremental_seconds"] = inc["seconds"]
        out["incremental_rows_written"] = inc["rows_written"]
    if "full-sqlite" in runs:
        out["full_sqlite_records_per_second"] = runs["full-sqlite"]["records_per_second"]
        out["full_sqlite_peak_rss_mb"] = runs["full-sqlite"]["peak_rss_mb"]
    return out


def table(sizes: list[SizeResult]) -> str:
    """A plain-text table of every run."""
    header = (
        f"{'N':>9} {'run':<16} {'records':>9} {'seconds':>8} {'records/s':>10} "
        f"{'written':>9} {'peak MB':>8} {'cpu s':>7} {'load':>9} {'status':<10}"
    )
    lines = [header, "-" * len(header)]
    for size in sizes:
        for name, run in size.runs.items():
            if name.startswith("copy-bound-pg"):
                for label, secs in (
                    ("COPY, PK", run["seconds"]),
                    ("COPY, PK, 1 stmt", run["single_copy_seconds"]),
                    ("COPY, no index", run["unindexed_seconds"]),
                ):
                    lines.append(
                        f"{size.products:>9,} {label:<16} {run['rows']:>9,} {secs:>8.2f} "
                        f"{run['rows'] / secs:>10,.0f} {run['rows']:>9,} "
                        f"{run['peak_rss_mb']:>8.0f} {'':>7} {_load(run):>9}"
                    )
                continue
            written = run.get("rows_written")
            if written is None and "entities" in run:
                written = sum(e["rows_written"] for e in run["entities"])
            status = run.get("status") or ",".join(
                sorted({e["status"] for e in run.get("entities", [])})
            )
            cpu = run.get("cpu_seconds")
            if cpu is None and "entities" in run:
                cpu = sum(e["cpu_seconds"] for e in run["entities"])
            lines.append(
                f"{size.products:>9,} {name:<16} {run['extracted']:>9,} {run['seconds']:>8.2f} "
                f"{run['records_per_second']:>10,.0f} {written:>9,} "
                f"{run['peak_rss_mb']:>8.0f} {cpu:>7.1f} {_load(run):>9} {status:<10}"
            )
            for entity in run.get("entities", []) if name == "all-pg" else []:
                lines.append(
                    f"{'':>9}   {entity['entity']:<14} {entity['extracted']:>9,} "
                    f"{entity['seconds']:>8.2f} {entity['records_per_second']:>10,.0f} "
                    f"{entity['rows_written']:>9,}"
                )
    summaries = [summarize(s) for s in sizes]
    lines.append("")
    for s in summaries:
        if "ratio_to_copy" in s:
            each = ", ".join(f"{r:.2f}" for r in s["ratio_to_copy_each"])
            lines.append(
                f"N={s['products']:,}: full sync into PostgreSQL at {s['ratio_to_copy']:.2f}x "
                f"the raw COPY bound, median of {s['rounds']} rounds ({each}); "
                f"{s['ratio_to_single_copy']:.2f}x one-statement COPY, "
                f"{s['ratio_to_unindexed_copy']:.2f}x COPY into an unindexed table"
            )
    for backend, key in (
        ("PostgreSQL", "full_pg_peak_rss_mb"),
        ("SQLite", "full_sqlite_peak_rss_mb"),
    ):
        peaks = {s["products"]: s.get(key) for s in summaries}
        small, large = peaks.get(100_000), peaks.get(1_000_000)
        if small and large:
            lines.append(
                f"peak RSS of the {backend} full sync, 1M / 100k: {large:.0f} / {small:.0f} MB "
                f"= {large / small:.2f}"
            )
    return "\n".join(lines)


def _load(run: dict[str, Any]) -> str:
    """The 1-minute load average before/after a run (other work on the machine)."""
    before, after = run.get("load_average_1m", (0.0, 0.0))
    return f"{before:.1f}/{after:.1f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (bounded, so a typo cannot start an hour-long run)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated product counts")
    parser.add_argument("--chunk-size", type=int, default=20_000, help="SyncOptions.chunk_size")
    parser.add_argument(
        "--max-entities", type=int, default=120_000, help="records per response (sandbox cap)"
    )
    parser.add_argument(
        "--prefetch", type=int, default=None, help="SyncOptions.prefetch (default: its default)"
    )
    parser.add_argument(
        "--all-entities-at",
        type=int,
        default=100_000,
        help="also sync every entity at this size (0: never)",
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="admin URL")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of full sync + COPY bound (PostgreSQL)"
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-reread", action="store_true")
    parser.add_argument("--budget", type=float, default=3600.0, help="seconds, whole run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not args.sizes or any(not 1_000 <= n <= 2_000_000 for n in args.sizes):
        parser.error("--sizes must be between 1,000 and 2,000,000 products")
    if not 1 <= args.repeat <= 10:
        parser.error("--repeat must be between 1 and 10")
    if not 100 <= args.chunk_size <= 500_000:
        parser.error("--chunk-size must be between 100 and 500,000")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON."""
    args = parse_args(argv)
    if args.child:
        from invsync.runtime import tune_garbage_collector

        tune_garbage_collector()  # as the CLI's process does
        result = run_child(json.loads(args.child))
        print(RESULT_MARK + json.dumps(result), flush=True)
        return 0
    budget = Budget(time.monotonic() + args.budget)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    command = " ".join([Path(sys.executable).name, *sys.argv])
    sizes: list[SizeResult] = []
    for products in args.sizes:
        sizes.append(measure_size(products, args, budget))
    report = {
        "command": command,
        "started": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "postgres": postgres_version(args.database_url)},
        "chunk_size": args.chunk_size,
        "summary": [summarize(s) for s in sizes],
        "sizes": [{"products": s.products, "sandbox": s.sandbox, "runs": s.runs} for s in sizes],
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(table(sizes))
    print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
