"""Benchmark the fixed cost of a run: a no-change incremental ``invsync sync`` of every entity.

Most scheduled runs find nothing (or little) to do, so what a run costs on top of its data
work is what they cost. The script:

1. starts a Prefect server once, as its own process (uvicorn serving Prefect's
   ``create_app``, as ``invsync.prefect_server`` does, on a throwaway ``PREFECT_HOME`` and,
   by default, a throwaway PostgreSQL database), and
   the Finale sandbox (``python -m sandbox``, rate limit off);
2. seeds a SQLite warehouse with a first full sync (``invsync sync --mode full``, untimed)
   and runs one incremental sync to warm the caches (untimed);
3. times ``invsync sync`` (the console script, as a subprocess, ``PREFECT_API_URL`` pointing
   at the running server): a no-change incremental sync of all five entities, ``--repeat``
   times; checks that each wrote nothing (inserted = updated = 0) and reports the median;
4. for the last of those runs, reads the flow runs back from the Prefect API: the parent
   flow run's span, and for each entity its span and the time from its last log line
   (Prefect's own "Finished in state" aside) to the next entity's start, or to the run's end
   for the last entity (what the run spends between entities besides their work);
5. times ``python -c 'import invsync.cli'`` (``--repeat`` times, median) and breaks one
   import down with ``-X importtime`` (the largest top-level imports, cumulative).

With ``--compare-with DIR`` (another checkout of the project, e.g. a ``git worktree`` of
the commit before a change, with the same migrations), each timed run of this checkout is
followed by one of DIR's against the same server, sandbox and warehouse, and the medians
and their ratio are reported: the load of a shared machine then weighs on both alike.

A script, not a test: figures vary with the machine and its load (printed).

    .venv/bin/python benchmarks/run_overhead.py                  # 5 repetitions, ~1 min
    .venv/bin/python benchmarks/run_overhead.py --repeat 9 --json /tmp/run_overhead.json
    .venv/bin/python benchmarks/run_overhead.py --prefect-db sqlite   # Prefect's default database
    git worktree add /tmp/before HEAD~1
    .venv/bin/python benchmarks/run_overhead.py --repeat 9 --compare-with /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
#: The console script installed next to this interpreter.
INVSYNC = str(Path(sys.executable).with_name("invsync"))
#: The project's own environment variables: none of the caller's may leak into the runs.
OWN_PREFIXES = ("FINALE_", "WAREHOUSE_", "SYNC_", "QUARANTINE_", "PREFECT_", "ALERT_")
OWN_NAMES = ("SENDGRID_API_KEY", "SLACK_WEBHOOK_URL", "LOCK_WAIT_SECONDS", "STALE_RUN_MINUTES")
#: Where the throwaway Prefect database is created unless TEST_DATABASE_URL says otherwise.
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SUMMARY_LINE = re.compile(r"^(\w+)\s+(\w+)\s+extracted=(\d+)\s+inserted=(\d+)\s+updated=(\d+)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _base_env(home: Path, root: Path = ROOT) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES) and k not in OWN_NAMES
    }
    env.update(
        PYTHONPATH=str(root),
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    return env


def _stop(process: subprocess.Popen[Any]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def prefect_database(kind: str) -> Iterator[dict[str, str]]:
    """The Prefect server's database settings: a throwaway PostgreSQL database, or SQLite.

    On SQLite (Prefect's default) the server answers some writes 503 while the database is
    locked by another write (events, logs), and the client retries after about 2 s: a stall
    of the server, not of the run, that lands at random between entities. A production
    server runs on PostgreSQL, so that is the default here.
    """
    if kind == "sqlite":
        yield {}
        return
    import sqlalchemy as sa

    admin_url = sa.make_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_ADMIN_URL))
    admin_url = admin_url.set(drivername="postgresql+psycopg")
    name = f"prefect_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin_url.set(drivername="postgresql+asyncpg", database=name)
        yield {"PREFECT_API_DATABASE_CONNECTION_URL": url.render_as_string(hide_password=False)}
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def prefect_server(home: Path, log: Path, database: dict[str, str]) -> Iterator[str]:
    """A Prefect server (API only) on a free port; yields its API URL."""
    port = _free_port()
    command = [
        sys.executable, "-m", "uvicorn",
        "--factory", "prefect.server.api.server:create_app",
        "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "error", "--lifespan", "on",
    ]  # fmt: skip
    env = {**_base_env(home), "PREFECT_UI_ENABLED": "0", **database}
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 90
        with httpx.Client(timeout=2.0) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the Prefect server exited; see {log}")
                try:
                    if client.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Prefect server did not start; see {log}")
                time.sleep(0.2)  # polling a starting server, before any measurement
        yield url
    finally:
        _stop(process)


@contextmanager
def sandbox(products: int, home: Path) -> Iterator[str]:
    """``python -m sandbox`` on a free port, rate limit off; yields its base URL."""
    command = [
        sys.executable, "-m", "sandbox", "--port=0", f"--products={products}",
        "--rate-limit-per-minute=0",
    ]  # fmt: skip
    env = {**_base_env(home), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        while True:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("the sandbox exited before announcing its URL")
            if line.startswith("Finale sandbox listening on "):
                yield line.split()[-1]
                return
    finally:
        _stop(process)


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """Run ``invsync ARGS``; return (wall seconds, stdout). Raises on a non-zero exit."""
    started = time.perf_counter()
    done = subprocess.run(
        [INVSYNC, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"invsync {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n"
            f"{done.stderr[-4000:]}"
        )
    return seconds, done.stdout


def timed_no_change_run(env: dict[str, str], cwd: Path, label: str) -> dict[str, float]:
    """Time one ``invsync sync``; check it was a no-change run of all five entities."""
    load = os.getloadavg()[0]
    seconds, stdout = run_cli(["sync"], env, cwd)
    counts = written(stdout)
    changed = {name: c for name, c in counts.items() if c != (0, 0)}
    if len(counts) != 5 or changed:
        raise RuntimeError(f"not a no-change run of 5 entities: {counts}")
    print(f"  invsync sync {label}: {seconds:.2f} s (load {load:.2f})", flush=True)
    return {"seconds": seconds, "load_1m": load}


def written(stdout: str) -> dict[str, tuple[int, int]]:
    """(inserted, updated) per entity, from the CLI's summary lines."""
    found = {}
    for line in stdout.splitlines():
        match = SUMMARY_LINE.match(line)
        if match:
            found[match[1]] = (int(match[4]), int(match[5]))
    return found


def import_seconds(env: dict[str, str], repeat: int) -> list[float]:
    """Wall seconds of ``python -c 'import invsync.cli'``, ``repeat`` times."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import invsync.cli"], env=env, check=True)
        times.append(time.perf_counter() - started)
    return times


def import_breakdown(env: dict[str, str], top: int = 12) -> list[tuple[str, float]]:
    """The largest top-level imports of ``import invsync.cli`` (cumulative seconds)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import invsync.cli"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    # "import time: self [us] | cumulative | imported package"; top level = no indent.
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        if not name.startswith("  "):
            rows.append((name.strip(), int(cumulative) / 1e6))
    return sorted(rows, key=lambda row: row[1], reverse=True)[:top]


def flow_run_spans(api_url: str) -> dict[str, Any]:
    """Spans of the latest ``finale-sync`` run and of each entity in it, from the API.

    An entity is a subflow of the run or a task of it, whichever the flow uses; for each,
    its span and the time from its last log line to its end.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
        LogFilterTaskRunId,
    )
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def span(start: Any, end: Any, logs: list[Any]) -> dict[str, Any]:
        # The entity's own last line: Prefect's "Finished in state ..." comes after the
        # engine's teardown, so it is not the end of the entity's work.
        work = [e.timestamp for e in logs if not e.message.startswith("Finished in state")]
        return {"seconds": (end - start).total_seconds(), "last_log": max(work, default=None)}

    with (
        temporary_settings(updates={PREFECT_API_URL: api_url}),
        get_client(sync_client=True) as client,
    ):
        runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=50)
        parent = next(r for r in runs if r.parent_task_run_id is None)
        by_parent = FlowRunFilter(id=FlowRunFilterId(any_=[parent.id]))
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])
            )
        )
        subflow_tasks = {child.parent_task_run_id for child in children}
        entities: list[dict[str, Any]] = []
        for child in children:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[child.id])))
            entities.append(
                {"name": child.name, "start": child.start_time}
                | span(child.start_time, child.end_time, logs)
            )
        for task in client.read_task_runs(flow_run_filter=by_parent):
            if task.id in subflow_tasks or task.start_time is None:
                continue
            logs = client.read_logs(LogFilter(task_run_id=LogFilterTaskRunId(any_=[task.id])))
            entities.append(
                {"name": f"task {task.name}", "start": task.start_time}
                | span(task.start_time, task.end_time, logs)
            )
    assert parent.start_time is not None and parent.end_time is not None, "run not finished"
    entities.sort(key=lambda entity: entity["start"])
    # From an entity's last line to the next entity's start (the run's end for the last):
    # what the run spends between entities, besides their work.
    ends = [entity["start"] for entity in entities[1:]] + [parent.end_time]
    for entity, next_start in zip(entities, ends, strict=True):
        last = entity.pop("last_log")
        entity.pop("start")
        entity["until_next"] = (next_start - last).total_seconds() if last else None
    return {
        "flow_run": str(parent.id),
        "seconds": (parent.end_time - parent.start_time).total_seconds(),
        "entities": entities,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the figures and optionally write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1000, help="sandbox account size")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each command")
    parser.add_argument("--json", type=Path, help="where to write the figures as JSON")
    parser.add_argument(
        "--prefect-db",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="the Prefect server's database (PostgreSQL: TEST_DATABASE_URL or the local server)",
    )
    parser.add_argument(
        "--compare-with",
        type=Path,
        metavar="DIR",
        help="another checkout: time its runs alternately with this one's and report the ratio",
    )
    args = parser.parse_args(argv)
    other = args.compare_with.resolve() if args.compare_with else None
    if other is not None and not (other / "invsync" / "cli.py").exists():
        parser.error(f"--compare-with {other}: not a checkout of this project (no invsync/cli.py)")

    with tempfile.TemporaryDirectory(prefix="run-overhead-") as tmp:
        work = Path(tmp)
        home = work / "prefect-home"
        home.mkdir()
        with (
            prefect_database(args.prefect_db) as database,
            prefect_server(home, work / "prefect-server.log", database) as api_url,
            sandbox(args.products, home) as base_url,
        ):
            env = {
                **_base_env(home),
                "PREFECT_API_URL": api_url,
                "WAREHOUSE_URL": f"sqlite:///{work / 'warehouse.db'}",
                "FINALE_BASE_URL": base_url,
                "FINALE_ACCOUNT": "acme",
                "FINALE_API_KEY": "sandbox-key",
                "FINALE_API_SECRET": "sandbox-secret",
                "FINALE_RATE_LIMIT_PER_MINUTE": "100000",
                "QUARANTINE_FAIL_RATIO": "1.0",
            }
            seed, _ = run_cli(["sync", "--mode", "full"], env, work)
            warm, _ = run_cli(["sync"], env, work)
            print(f"seed (full sync) {seed:.2f} s; warm-up incremental {warm:.2f} s", flush=True)
            runs, other_runs = [], []
            for i in range(args.repeat):
                if other is not None:  # first, so the last run (the spans') is this one's
                    other_env = {**env, "PYTHONPATH": str(other)}
                    other_runs.append(timed_no_change_run(other_env, work, f"#{i + 1} {other}"))
                runs.append(timed_no_change_run(env, work, f"#{i + 1}"))
            spans = flow_run_spans(api_url)
        imports = import_seconds(_base_env(home), args.repeat)
        breakdown = import_breakdown(_base_env(home))

    sync_median = statistics.median(r["seconds"] for r in runs)
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "products": args.products,
        "prefect_db": args.prefect_db,
        "sync_seconds": [r["seconds"] for r in runs],
        "sync_median": sync_median,
        "load_1m": [r["load_1m"] for r in runs],
        "last_run": spans,
        "import_seconds": imports,
        "import_median": statistics.median(imports),
        "import_breakdown": breakdown,
    }
    if other is not None:
        other_median = statistics.median(r["seconds"] for r in other_runs)
        result["compared_with"] = {
            "checkout": str(other),
            "sync_seconds": [r["seconds"] for r in other_runs],
            "sync_median": other_median,
            "ratio": sync_median / other_median,
        }
    print(
        f"\ninvsync sync (no change, 5 entities; Prefect server on {args.prefect_db}), "
        f"median of {args.repeat}: {sync_median:.2f} s"
    )
    print(f"  runs: {', '.join(f'{s:.2f}' for s in result['sync_seconds'])} s")
    if other is not None:
        compared = result["compared_with"]
        print(
            f"  {other}, alternating with those: median {compared['sync_median']:.2f} s "
            f"(runs: {', '.join(f'{s:.2f}' for s in compared['sync_seconds'])} s)\n"
            f"  this checkout / {other}: {compared['ratio']:.2f}"
        )
    print(f"  last run's finale-sync flow run: {spans['seconds']:.2f} s")
    for entity in spans["entities"]:
        tail = entity["until_next"]
        tail_text = (
            f"; {tail:.2f} s from its last line to the next start" if tail is not None else ""
        )
        print(f"    {entity['name']:36} {entity['seconds']:.2f} s{tail_text}")
    print(
        f"python -c 'import invsync.cli', median of {args.repeat}: {result['import_median']:.2f} s"
    )
    print("  largest imports (-X importtime, cumulative):")
    for name, seconds in breakdown:
        print(f"    {name:40} {seconds:.3f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
        print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
