"""Scale-out, end to end: a Prefect server on PostgreSQL, the deployments of ``prefect.yaml``
and two process workers on one work pool, all real processes on loopback.

The path ``docs/scale-out.md`` tells a team to take, step by step:

1. ``prefect server start`` on a throwaway PostgreSQL database;
2. ``invsync setup`` (work pool and ``finale-api`` rate limit), then ``prefect deploy --all``
   from the project folder;
3. two ``prefect worker start --pool inventory-sync --limit 2`` processes, each with its own
   ``PREFECT_HOME`` (as if on its own machine), the FINALE_* variables of a sandbox and the
   warehouse URL;
4. three deployment runs with parameters, at once, with ``prefect deployment run``.

While the test holds the warehouse locks of products, stock and purchase orders, the three
runs can start but not finish. So all three are seen Running together, which needs both
workers (each takes at most two runs), and the catalogue run writes no product while the lock
is held. Once the locks are released every run completes; the test then checks the rows in
the warehouse against the sandbox's ground truth, the run log, and the artifacts, logs and
worker events in the Prefect API.

The chunks of one entity load and commit one after another (see ``docs/scale-out.md``); only
their prepare step runs in parallel (``SYNC_PARALLEL_CHUNKS``), which
``tests/operate/test_operate_parallel_chunks.py`` tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import httpx
import psutil
import pytest
import sqlalchemy as sa
import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterTaskRunId,
    TaskRunFilter,
    TaskRunFilterName,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import FlowRun, TaskRun
from prefect.events.filters import EventFilter, EventNameFilter
from prefect.settings import PREFECT_API_URL, temporary_settings

from invsync.settings import Settings
from pipeline.entities import ENTITIES
from reporting.artifacts import COUNTS_KEY, HEALTH_KEY, QUARANTINE_KEY, artifact_key
from sandbox.control import SandboxControl
from sandbox.server import SandboxConfig, SandboxHandle, start_in_thread
from schemas.tables import quarantine, sync_runs
from warehouse.db import create_warehouse_engine
from warehouse.locks import entity_lock

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PROJECT_DIR = Path(__file__).resolve().parents[2]
#: ``prefect`` and ``invsync`` are installed next to the interpreter running the tests.
BIN = Path(sys.executable).parent
POOL = "inventory-sync"
WORKERS = ("scaleout-worker-1", "scaleout-worker-2")
WORKER_LIMIT = 2
SANDBOX_PRODUCTS = 300

#: Three runs of three deployments, with parameters: more than one worker may take.
RUNS: dict[str, dict[str, Any]] = {
    "finale-sync/catalog-hourly": {
        "entities": ["facilities", "vendors", "products"],
        "mode": "full",
    },
    # Stock resolves entries through the product catalogue: its deployment syncs products
    # first (serialised with the catalogue run's products by the entity lock).
    "finale-sync/stock-every-15-minutes": {"entities": ["products", "stock"], "mode": "full"},
    "finale-sync/nightly-full-reconcile": {"entities": ["purchase_orders"], "mode": "full"},
}
CATALOG = "finale-sync/catalog-hourly"
#: The entity locks the test holds while the runs start: the last entity of each run.
HELD = ("products", "stock", "purchase_orders")

SUBMITTED = "prefect.worker.submitted-flow-run"
FINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})

# Bounded waits; a normal run takes ~15 s to start the server, ~15 s to deploy, ~30 s for
# the flow runs (most of it Python start-up and imports in each flow-run process).
SERVER_START_TIMEOUT = 90.0
COMMAND_TIMEOUT = 120.0
RUNNING_TIMEOUT = 120.0
FINISH_TIMEOUT = 120.0
#: How long a run waits for a held entity lock; longer than the test ever holds one.
LOCK_WAIT_SECONDS = 2 * RUNNING_TIMEOUT + 60

T = TypeVar("T")


# --- processes ---------------------------------------------------------------------------


@dataclass
class Processes:
    """Subprocesses started by the test, each in its own session with its output in a file."""

    log_dir: Path
    started: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(
        self, name: str, args: list[str], *, env: dict[str, str], cwd: Path
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` in the background; its output goes to ``<log_dir>/<name>.log``."""
        with (self.log_dir / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                args,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started[name] = process
        return process

    def output(self, name: str) -> str:
        """Everything ``name`` wrote so far."""
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def tail(self, name: str, lines: int = 60) -> str:
        """The last ``lines`` lines of ``name``'s output, headed by its name."""
        text = "\n".join(self.output(name).splitlines()[-lines:])
        return f"----- {name} (last {lines} lines) -----\n{text}"

    def report(self) -> str:
        """The tails of every process's output, for a failure message."""
        return "\n".join(self.tail(name) for name in self.started)

    def finish(self, name: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Wait for the short-lived command ``name``; its output, or a failure showing it."""
        process = self.started[name]
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} did not finish within {timeout:.0f} s\n{self.tail(name)}")
        if process.returncode != 0:
            pytest.fail(f"{name} exited with {process.returncode}\n{self.tail(name)}")
        return self.output(name)

    def stop(self, names: list[str], grace: float = 10.0) -> None:
        """Terminate ``names`` and every process they started, then kill what is left.

        A process worker starts each flow run in a new session, so the whole process tree
        is collected first: signalling the worker's group would miss the flow runs.
        """
        tree: list[psutil.Process] = []
        for name in names:
            process = self.started.get(name)
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(psutil.NoSuchProcess):
                parent = psutil.Process(process.pid)
                tree += [parent, *parent.children(recursive=True)]
        for member in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.terminate()
        _, alive = psutil.wait_procs(tree, timeout=grace)
        for member in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        psutil.wait_procs(alive, timeout=5)
        for name in names:
            if name in self.started:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.started[name].wait(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """This environment without the developer's Prefect or inventory-sync settings.

    Notification settings are set empty so that no alert leaves the machine, even if a
    ``.env`` in the project folder (which the flow runs read) configures a channel.
    """
    ours = {name.upper() for name in Settings.model_fields}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PREFECT_") and key.upper() not in ours
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(
        dict.fromkeys(
            (
                "SENDGRID_API_KEY",
                "ALERT_EMAIL_FROM",
                "ALERT_EMAIL_TO",
                "SLACK_WEBHOOK_URL",
                "ALERT_PREFECT_BLOCK",
            ),
            "",
        )
    )
    return env


def _wait_for(what: str, check: Callable[[], T | None], timeout: float, processes: Processes) -> T:
    """Poll ``check`` until it returns something truthy; fail with the logs on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{processes.report()}")
        time.sleep(0.5)


# --- fixtures ----------------------------------------------------------------------------


@dataclass
class Cluster:
    """A Prefect server on loopback, and what workers and clients need to reach it."""

    root: Path
    api_url: str
    processes: Processes
    sandbox: SandboxHandle
    warehouse_url: str

    @property
    def client_env(self) -> dict[str, str]:
        """Environment of the CLI commands: the API URL and a private PREFECT_HOME."""
        return {
            **_clean_env(),
            "PREFECT_HOME": str(self.root / "prefect-home-cli"),
            "PREFECT_API_URL": self.api_url,
        }

    def worker_env(self, name: str) -> dict[str, str]:
        """Environment of one worker, as on its own machine: API URL, Finale, warehouse."""
        return {
            **self.client_env,
            "PREFECT_HOME": str(self.root / f"prefect-home-{name}"),
            # Poll every second instead of 10, so the test does not wait for the pick-up.
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            **self.sandbox.env,
            "WAREHOUSE_URL": self.warehouse_url,
            # The sandbox seeds invalid records on purpose; a 300-product account has only
            # a handful of vendors, so one bad vendor is over the 5 % default.
            "QUARANTINE_FAIL_RATIO": "0.5",
            "LOCK_WAIT_SECONDS": str(LOCK_WAIT_SECONDS),
        }


@pytest.fixture
def prefect_database_url(pg_admin_engine: sa.Engine) -> Iterator[str]:
    """A fresh PostgreSQL database for the Prefect server (asyncpg URL), dropped after."""
    name = f"invsync_test_prefect_{uuid.uuid4().hex[:12]}"
    with pg_admin_engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = pg_admin_engine.url.set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with pg_admin_engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    """A small Finale account on loopback, rate limit off."""
    config = SandboxConfig(port=0, products=SANDBOX_PRODUCTS, rate_limit_per_minute=0)
    with start_in_thread(config) as handle:
        yield handle


@pytest.fixture
def cluster(
    tmp_path: Path, prefect_database_url: str, pg_url: str, sandbox: SandboxHandle
) -> Iterator[Cluster]:
    """``prefect server start`` on PostgreSQL; every process the test starts is stopped after.

    Depends on the databases and the sandbox, so it is torn down before them: workers and
    flow runs first, the server last.
    """
    processes = Processes(tmp_path)
    port = _free_port()
    cluster = Cluster(tmp_path, f"http://127.0.0.1:{port}/api", processes, sandbox, pg_url)
    server_env = {
        **cluster.client_env,
        "PREFECT_HOME": str(tmp_path / "prefect-home-server"),
        "PREFECT_API_DATABASE_CONNECTION_URL": prefect_database_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    # --no-scheduler: the deployments' cron schedules must not start runs during the test.
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-ui", "--no-scheduler"]
    server = processes.start("server", command, env=server_env, cwd=tmp_path)
    try:

        def answers() -> bool:
            if server.poll() is not None:
                pytest.fail(f"prefect server exited with {server.returncode}\n{processes.report()}")
            return _healthy(cluster.api_url)

        _wait_for(
            "the Prefect server to answer /api/health", answers, SERVER_START_TIMEOUT, processes
        )
        yield cluster
    finally:
        processes.stop([name for name in processes.started if name != "server"])
        processes.stop(["server"])


def _healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def _api(api_url: str) -> Iterator[SyncPrefectClient]:
    with (
        temporary_settings(updates={PREFECT_API_URL: api_url}),
        get_client(sync_client=True) as client,
    ):
        yield client


# --- what the test reads back ------------------------------------------------------------


def _flow_run_id(output: str) -> UUID:
    match = re.search(r"UUID: ([0-9a-f-]{36})", output)
    assert match, f"no flow run id in the output of prefect deployment run:\n{output}"
    return UUID(match.group(1))


def _state_of(run: FlowRun | TaskRun) -> str:
    return run.state_type.value if run.state_type else "NONE"


def _states(client: SyncPrefectClient, run_ids: dict[str, UUID]) -> dict[str, FlowRun]:
    return {name: client.read_flow_run(run_id) for name, run_id in run_ids.items()}


def _all_running(client: SyncPrefectClient, run_ids: dict[str, UUID]) -> bool:
    runs = _states(client, run_ids)
    ended = {name: run.state for name, run in runs.items() if _state_of(run) in FINAL}
    if ended:
        pytest.fail(f"runs ended while the entity locks were held: {ended}")
    return all(_state_of(run) == "RUNNING" for run in runs.values())


def _entity_runs(client: SyncPrefectClient, run_id: UUID, name: str) -> list[TaskRun]:
    """The entity task runs named ``name`` of the flow run ``run_id``."""
    return client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
        task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[name])),
    )


def _entity_running(client: SyncPrefectClient, run_id: UUID, name: str) -> bool:
    """Whether the entity task run ``name`` of the flow run ``run_id`` is Running."""
    return any(_state_of(run) == "RUNNING" for run in _entity_runs(client, run_id, name))


def _workers_of(client: SyncPrefectClient, run_ids: list[UUID]) -> dict[UUID, str] | None:
    """Which worker submitted each run, from the workers' events; None until all are in."""
    page = client.read_events(filter=EventFilter(event=EventNameFilter(name=[SUBMITTED])), limit=50)
    workers: dict[UUID, str] = {}
    for event in page.events:
        for related in event.related:
            if related.role == "flow-run":
                workers[UUID(related.id.removeprefix("prefect.flow-run."))] = str(
                    event.resource.name
                )
    return workers if all(run_id in workers for run_id in run_ids) else None


def _assert_deployed(client: SyncPrefectClient) -> None:
    spec = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())
    expected = {d["name"]: d for d in spec["deployments"]}
    deployments = client.read_deployments(
        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[POOL]))
    )
    found = {d.name: d for d in deployments}
    assert set(found) == set(expected)
    for name, deployment in found.items():
        assert deployment.entrypoint == expected[name]["entrypoint"]
        assert deployment.work_pool_name == POOL
        assert deployment.global_concurrency_limit is not None
        assert deployment.global_concurrency_limit.limit == 1
        # No pull step in prefect.yaml: workers run the code where `prefect deploy` ran.
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_DIR)}}
        ]
    assert client.read_work_pool(POOL).type == "process"
    assert client.read_global_concurrency_limit_by_name("finale-api").limit >= 1


def _assert_warehouse_matches_the_runs(
    client: SyncPrefectClient, warehouse: sa.Engine, run_ids: dict[str, UUID], sandbox: str
) -> dict[tuple[str, str], dict[str, Any]]:
    """One run-log row per entity, written by its task run; the rows match the counts.

    Returns:
        The ``sync_runs`` rows by (run id, entity).
    """
    with warehouse.connect() as conn:
        rows = conn.execute(
            sa.select(sync_runs).where(sync_runs.c.run_id.in_([str(r) for r in run_ids.values()]))
        ).mappings()
        log = {(row["run_id"], row["entity"]): dict(row) for row in rows}
        table_rows = {
            name: conn.execute(sa.select(sa.func.count()).select_from(spec.table)).scalar_one()
            for name, spec in ENTITIES.items()
        }
        # One open entry per bad product, however many runs read it.
        quarantined_products = conn.execute(
            sa.select(sa.func.count())
            .select_from(quarantine)
            .where(quarantine.c.entity == "products", quarantine.c.resolved_at.is_(None))
        ).scalar_one()
    assert len(log) == sum(len(params["entities"]) for params in RUNS.values())
    for deployment, params in RUNS.items():
        run_id = run_ids[deployment]
        for entity in params["entities"]:
            row = log[(str(run_id), entity)]
            assert row["status"] == "succeeded", row["error"]
            assert row["mode"] == "full"
            loaded = row["inserted"] + row["updated"] + row["unchanged"]
            assert row["extracted"] == loaded + row["quarantined"]
            # Full runs reconcile: the rows each made current are the table's rows.
            assert table_rows[entity] == row["source_count"] == row["warehouse_count"]
            # Each entity ran as one completed task run of the deployment run.
            assert row["flow_run_id"] == str(run_id)
            (entity_run,) = _entity_runs(client, run_id, f"sync-{entity}-full")
            assert _state_of(entity_run) == "COMPLETED"

    # Every product of the account is in the warehouse, but the quarantined ones.
    with SandboxControl(sandbox) as control:
        source_products = control.count("product")
    assert source_products == SANDBOX_PRODUCTS
    # Both runs that read products (the catalogue's, and the stock run's before stock)
    # quarantined every bad product.
    for deployment in (CATALOG, "finale-sync/stock-every-15-minutes"):
        assert log[(str(run_ids[deployment]), "products")]["quarantined"] == quarantined_products
    assert table_rows["products"] == source_products - quarantined_products
    return log


def _assert_artifacts_of_each_run(
    client: SyncPrefectClient,
    run_ids: dict[str, UUID],
    log: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Counts (overall and per entity), quarantine sample and health, linked to each run."""
    for deployment, params in RUNS.items():
        run_id = run_ids[deployment]
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
        by_key = {artifact.key: artifact for artifact in artifacts}
        per_entity = {artifact_key(COUNTS_KEY, entity) for entity in params["entities"]}
        assert set(by_key) == {COUNTS_KEY, QUARANTINE_KEY, HEALTH_KEY, *per_entity}
        counts = {row["entity"]: row for row in json.loads(str(by_key[COUNTS_KEY].data))}
        assert set(counts) == set(params["entities"])
        for entity, row in counts.items():
            assert row["status"] == "succeeded"
            assert row["inserted"] == log[(str(run_id), entity)]["inserted"]
        health = str(by_key[HEALTH_KEY].data)
        assert all(entity in health for entity in params["entities"])


def _log_lines(client: SyncPrefectClient, task_run_id: UUID) -> list[str]:
    entries = client.read_logs(
        log_filter=LogFilter(task_run_id=LogFilterTaskRunId(any_=[task_run_id]))
    )
    return [entry.message for entry in entries]


# --- the test ----------------------------------------------------------------------------


@pytest.mark.timeout(SERVER_START_TIMEOUT + 2 * COMMAND_TIMEOUT + RUNNING_TIMEOUT + 240)
def test_three_deployment_runs_share_two_workers_and_land_in_the_warehouse(
    cluster: Cluster,
) -> None:
    processes = cluster.processes
    prefect = str(BIN / "prefect")

    # 1. The work pool and the shared rate limit, then every deployment of prefect.yaml.
    setup = [str(BIN / "invsync"), "setup"]
    processes.start("setup", setup, env=cluster.client_env, cwd=PROJECT_DIR)
    assert f"work pool {POOL} created" in processes.finish("setup")
    deploy = [prefect, "--no-prompt", "deploy", "--all"]
    processes.start("deploy", deploy, env=cluster.client_env, cwd=PROJECT_DIR)
    # 2. Two workers on the pool, started away from the project folder. They only need the
    #    pool to exist, so they start while `prefect deploy` runs.
    for name in WORKERS:
        worker = [prefect, "worker", "start", "--pool", POOL, "--limit", str(WORKER_LIMIT)]
        worker += ["--name", name]
        processes.start(name, worker, env=cluster.worker_env(name), cwd=cluster.root)
    processes.finish("deploy")

    warehouse = create_warehouse_engine(cluster.warehouse_url)
    with _api(cluster.api_url) as client, contextlib.ExitStack() as cleanup:
        cleanup.callback(warehouse.dispose)
        _assert_deployed(client)

        # 3. Three runs with parameters, while the test holds the last entity of each.
        with contextlib.ExitStack() as locks:
            for entity in HELD:
                locks.enter_context(entity_lock(warehouse, entity))
            for number, (deployment, params) in enumerate(RUNS.items()):
                run = [prefect, "--no-prompt", "deployment", "run", deployment]
                run += ["--params", json.dumps(params)]
                processes.start(f"run-{number}", run, env=cluster.client_env, cwd=PROJECT_DIR)
            run_ids = {
                deployment: _flow_run_id(processes.finish(f"run-{number}"))
                for number, deployment in enumerate(RUNS)
            }
            _wait_for(
                "the three runs to be Running at once",
                lambda: _all_running(client, run_ids),
                RUNNING_TIMEOUT,
                processes,
            )
            _wait_for(
                "the catalogue run to reach products",
                lambda: _entity_running(client, run_ids[CATALOG], "sync-products-full"),
                RUNNING_TIMEOUT,
                processes,
            )
            # The lock held here keeps the catalogue run out of products, whichever worker
            # runs it: no product row, and no run-log row for products yet.
            with warehouse.connect() as conn:
                products = sa.select(sa.func.count()).select_from(ENTITIES["products"].table)
                products_runs = sa.select(sa.func.count()).where(
                    sync_runs.c.run_id == str(run_ids[CATALOG]), sync_runs.c.entity == "products"
                )
                assert conn.execute(products).scalar_one() == 0
                assert conn.execute(products_runs).scalar_one() == 0

        # 4. Released: every run completes.
        def finished() -> dict[str, FlowRun] | None:
            runs = _states(client, run_ids)
            return runs if all(_state_of(r) in FINAL for r in runs.values()) else None

        runs = _wait_for("the runs to finish", finished, FINISH_TIMEOUT, processes)
        states = {name: run.state_name for name, run in runs.items()}
        assert all(_state_of(run) == "COMPLETED" for run in runs.values()), (
            f"{states}\n{processes.report()}"
        )

        # They ran at the same time, on both workers, never more than --limit on one.
        starts = [run.start_time for run in runs.values() if run.start_time]
        ends = [run.end_time for run in runs.values() if run.end_time]
        assert len(starts) == len(ends) == len(RUNS)
        assert max(starts) < min(ends)
        workers = _wait_for(
            "the workers' submitted-flow-run events",
            lambda: _workers_of(client, list(run_ids.values())),
            30,
            processes,
        )
        ran_on = Counter(workers[run_id] for run_id in run_ids.values())
        assert set(ran_on) == set(WORKERS), ran_on
        assert max(ran_on.values()) <= WORKER_LIMIT

        # 5. The rows in the warehouse; 6. the artifacts and logs in the Prefect API.
        log = _assert_warehouse_matches_the_runs(
            client, warehouse, run_ids, cluster.sandbox.base_url
        )
        _assert_artifacts_of_each_run(client, run_ids, log)
        (products_run,) = _entity_runs(client, run_ids[CATALOG], "sync-products-full")
        line = f"products: extracted={SANDBOX_PRODUCTS} "
        _wait_for(
            "the products task run's log line in the Prefect API",
            lambda: any(m.startswith(line) for m in _log_lines(client, products_run.id)),
            15,
            processes,
        )
