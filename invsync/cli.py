"""``invsync``: a small command line over the flows, the sandbox and the warehouse.

This is the edge: it loads settings once, checks arguments, the warehouse and Finale before
Prefect starts, and reports each problem as one short line naming the setting or option at
fault (``--verbose`` adds the traceback).

Exit codes: 0 success; 1 a run failed (or could not start: warehouse or Finale unreachable,
credentials rejected); 2 bad arguments or settings; 3 nothing failed but an entity was
skipped because another run holds its lock. ``invsync writeback`` uses the same codes (1: a
request failed; 3: another write-back run was in progress). ``invsync import``: 1 when a
record of the file was quarantined, 2 when the file cannot be read (README, "Files in and
out").
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from invsync.events_cli import events_app
from invsync.runtime import freeze_objects_before_exit, tune_garbage_collector
from invsync.settings import ConfigError, load_settings

if TYPE_CHECKING:  # the help must not import the warehouse layer (sqlalchemy, numpy)
    from warehouse.runs import RunRecord, SyncSummary
    from writeback.run import WritebackSummary

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
db_app = typer.Typer(
    help="Warehouse schema, or with --app the app-side tables (Alembic migrations).",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(events_app, name="events")

#: The entity names (``pipeline.entities.ENTITIES``, which the help must not import: pandas).
ENTITY_NAMES = ("facilities", "vendors", "products", "stock", "purchase_orders")
MODES = ("incremental", "full")
ENTITIES_HELP = f"Comma-separated entities ({', '.join(ENTITY_NAMES)}), or 'all'."

#: Exit code of a run in which nothing failed but an entity was skipped (lock busy).
EXIT_SKIPPED = 3

_verbose = False


def _fail(message: str, code: int = 2) -> None:
    if _verbose and sys.exc_info()[0] is not None:
        traceback.print_exc()
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"invsync {importlib.metadata.version('inventory-sync')}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks and Prefect's own logs.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """inventory-sync: Finale Inventory <-> warehouse."""
    global _verbose
    _verbose = verbose


class _WithoutTraceback(logging.Formatter):
    """Formats like ``inner`` but leaves tracebacks out (for this handler only: the
    record, which Prefect also sends to its API with the traceback, is left as it was)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def _quiet_console() -> None:
    """Without --verbose, Prefect's console lines keep their text but not their tracebacks:
    a failure is then a few lines, and the command's own summary says why."""
    if _verbose:
        return
    for logger in (logging.getLogger(), logging.getLogger("prefect")):
        for handler in logger.handlers:
            is_console = isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            )
            if is_console and not isinstance(handler.formatter, _WithoutTraceback):
                handler.setFormatter(_WithoutTraceback(handler.formatter or logging.Formatter()))


def parse_instant(value: str | None, option: str) -> datetime | None:
    """Parse an ISO date or datetime from the command line; naive means UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{option} {value!r} is not an ISO date or datetime (e.g. 2025-01-31T00:00:00Z)")
        raise  # unreachable, keeps type checkers happy
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _print_summary(results: dict[str, RunRecord]) -> None:
    for name, r in results.items():
        why = f"  ({_first_line(r.error)})" if r.error else ""
        if r.started_at is None:  # failed before its run was recorded: no counts to show
            typer.echo(f"{name:16} {r.status.value}{why}")
            continue
        typer.echo(
            f"{name:16} {r.status.value:10} extracted={r.extracted:<8} "
            f"inserted={r.inserted:<8} updated={r.updated:<8} "
            f"unchanged={r.unchanged:<8} quarantined={r.quarantined:<6} "
            f"deleted={r.deleted}{why}"
        )


def _first_line(text: Any, limit: int = 300) -> str:
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _exit_code(ok: bool, summary: SyncSummary) -> int:
    from warehouse.runs import RunStatus

    if not ok:
        return 1
    return EXIT_SKIPPED if RunStatus.SKIPPED in summary.statuses else 0


def _check_arguments(
    entities: str, mode: str | None, since: datetime | None, until: datetime | None
) -> list[str]:
    """The entity names, or exit 2 naming the option at fault (before Prefect starts)."""
    names = [n.strip() for n in entities.split(",") if n.strip()]
    if not names:
        _fail(f"--entities is empty; choose from {', '.join(ENTITY_NAMES)}, or 'all'")
    if names != ["all"]:
        unknown = [n for n in names if n not in ENTITY_NAMES]
        if unknown:
            _fail(
                f"--entities: unknown entity {', '.join(unknown)}; choose from "
                f"{', '.join(ENTITY_NAMES)}, or 'all'"
            )
    if mode is not None and mode not in MODES:
        _fail(f"--mode {mode!r} is not a mode; choose from {', '.join(MODES)}")
    if since is not None and until is not None and until <= since:
        _fail(f"--until ({until.isoformat()}) must be after --since ({since.isoformat()})")
    return list(ENTITY_NAMES) if names == ["all"] else [n for n in ENTITY_NAMES if n in names]


def _preflight(settings: Any) -> None:
    """Warehouse and Finale reachable, credentials accepted; else exit 1, one line."""
    from connectors.finale import FinaleClient
    from pipeline.preflight import PreflightError, check_finale, check_warehouse

    # Each retry logs a warning; without --verbose the one final line says it all.
    retries = logging.getLogger("connectors.finale")
    level = retries.level
    if not _verbose:
        retries.setLevel(logging.ERROR)
    try:
        check_warehouse(settings.warehouse_url, schema=settings.warehouse_schema)
        with FinaleClient(settings.finale()) as client:
            check_finale(client)
    except PreflightError as exc:
        _fail(str(exc), code=1)
    finally:
        retries.setLevel(level)


@contextmanager
def _heartbeat_only_if_configured() -> Iterator[None]:
    """A run from the shell sends Prefect heartbeats only if PREFECT_FLOWS_HEARTBEAT_FREQUENCY
    (or a Prefect profile) asks for them.

    Heartbeats let an automation mark a run crashed when its worker's process vanished; here
    the operator sees the process end, and joining the heartbeat thread cost every run up to
    a second (benchmarks/run_overhead.py).
    """
    from prefect.settings import get_current_settings

    from flows.finale_sync import without_heartbeat

    if "heartbeat_frequency" in get_current_settings().flows.model_fields_set:
        yield
        return
    with without_heartbeat():
        yield


def run_sync(**params: Any) -> tuple[bool, SyncSummary]:
    """Run the ``finale-sync`` flow; return (succeeded, its summary)."""
    from flows.finale_sync import SyncFailed, finale_sync
    from invsync.prefect_server import temporary_server
    from warehouse.runs import SyncSummary

    _quiet_console()
    with temporary_server(), _heartbeat_only_if_configured():
        state = finale_sync(**params, return_state=True)
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, SyncFailed):
        return False, outcome.summary
    if isinstance(outcome, BaseException):
        return False, SyncSummary(run_id=None, error=str(outcome))
    assert isinstance(outcome, SyncSummary), f"finale-sync returned {type(outcome).__name__}"
    return True, outcome


@app.command()
def sync(
    entities: Annotated[str, typer.Option(help=ENTITIES_HELP)] = "all",
    mode: Annotated[str, typer.Option(help=f"One of: {', '.join(MODES)}.")] = "incremental",
    since: Annotated[
        str | None, typer.Option(help="ISO date or datetime: start of the range to read.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="ISO date or datetime: end of the range (after --since).")
    ] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Records per chunk.", min=1)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Do not commit rows.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status JSON.")] = False,
) -> None:
    """Sync Finale into the warehouse (exit 0 success, 1 failure, 2 bad input, 3 skipped)."""
    start, end = parse_instant(since, "--since"), parse_instant(until, "--until")
    names = _check_arguments(entities, mode, start, end)
    try:
        settings = load_settings()
        settings.finale()
    except ConfigError as exc:
        _fail(str(exc))
        return
    _preflight(settings)
    ok, summary = run_sync(
        entities=names,
        mode=mode,
        since=start,
        until=end,
        chunk_size=chunk_size,
        dry_run=dry_run,
    )
    if as_json:
        typer.echo(json.dumps(_statuses(settings, names), indent=2))
    else:
        _print_summary(summary.entities)
        if not ok:
            message = _first_line(summary.error or "")
            typer.secho(f"sync failed: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(_exit_code(ok, summary))


def _statuses(settings: Any, names: list[str] | None = None) -> list[dict[str, Any]]:
    from pipeline.status import all_statuses
    from warehouse.db import create_warehouse_engine
    from warehouse.migrate import WarehouseElsewhere, upgrade

    try:
        upgrade(settings.warehouse_url, schema=settings.warehouse_schema)
    except WarehouseElsewhere as exc:
        _fail(str(exc), code=1)
    engine = create_warehouse_engine(settings.warehouse_url, schema=settings.warehouse_schema)
    try:
        with engine.connect() as conn:
            rows = all_statuses(conn, quarantine_ratio=settings.quarantine_fail_ratio)
    finally:
        engine.dispose()
    return [r for r in rows if names is None or r["entity"] in names]


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status JSON.")] = False,
) -> None:
    """Health of each entity: status, last sync, metrics and a 0-100 health score."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail(str(exc))
        return
    rows = _statuses(settings)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        m = r["metrics"]
        typer.echo(
            f"{r['entity']:16} {r['status']:12} score={r['health_score']:<4} "
            f"last_sync={r['last_sync'] or 'never'}  records={m['records_synced']} "
            f"errors={m['errors']}  open quarantine: {r['open_quarantine']} records"
        )


def run_report_flow() -> tuple[bool, dict[str, Any] | str]:
    """Run the ``data-quality-report`` flow; return (succeeded, its result or the error)."""
    from flows.data_quality import data_quality_report
    from invsync.prefect_server import temporary_server

    _quiet_console()
    with temporary_server(), _heartbeat_only_if_configured():
        state = data_quality_report(return_state=True)
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        return False, _first_line(outcome)
    return True, outcome


@app.command()
def report(
    open_it: Annotated[
        bool, typer.Option("--open", help="Open the HTML report in a web browser.")
    ] = False,
) -> None:
    """Run the data-quality checks and write the sync-health HTML report (to REPORTS_DIR);
    the last line printed is the report's path (exit 0 written, 1 failed, 2 bad settings)."""
    try:
        settings = load_settings()
        from pipeline.dq import DQConfigError, load_dq_config

        load_dq_config(settings.dq_config)
    except (ConfigError, DQConfigError) as exc:
        _fail(str(exc))
        return
    ok, outcome = run_report_flow()
    if not ok or not isinstance(outcome, dict):
        _fail(f"report failed: {outcome}", code=1)
        return
    failed = outcome["failed"]
    typer.echo(
        f"data-quality report {outcome['report_id']}: {outcome['checks']} checks, "
        f"{len(failed)} failed" + (f" ({'; '.join(failed)})" if failed else "")
    )
    typer.echo(f"analytics dataset: {outcome['dataset_url']}")
    if open_it:
        import webbrowser
        from pathlib import Path

        webbrowser.open(Path(outcome["report_path"]).as_uri())
    typer.echo(outcome["report_path"])


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument()] = "head",
    app_tables: Annotated[
        bool,
        typer.Option(
            "--app",
            help="Create or upgrade the app-side tables (purchase_order_requests, ...) in "
            "SUPABASE_DB_URL instead of the warehouse.",
        ),
    ] = False,
    api: Annotated[
        bool,
        typer.Option(
            "--api",
            help="Also create the read-only views the app reads through Supabase's REST API, "
            "and their role (PostgreSQL 15+; see the README).",
        ),
    ] = False,
) -> None:
    """Apply the warehouse migrations (also done automatically before each sync)."""
    from warehouse.migrate import WarehouseElsewhere, current_revision, upgrade

    try:
        settings = load_settings()
        app_url = settings.app_db_url() if app_tables else None
    except ConfigError as exc:
        _fail(str(exc))
        return
    if app_url is not None:
        _upgrade_app_tables(app_url, revision)
        return
    if api and revision != "head":
        _fail(f"--api needs the warehouse at head; leave out the revision {revision!r}")
    url, schema = settings.warehouse_url, settings.warehouse_schema
    try:
        upgrade(url, revision, schema=schema)
    except WarehouseElsewhere as exc:
        _fail(str(exc), code=1)
    typer.echo(f"warehouse at revision {current_revision(url, schema=schema)}")
    if api:
        _install_api(settings)


def _install_api(settings: Any) -> None:
    from warehouse.api import ApiSetupError, install_api

    try:
        done = install_api(
            settings.warehouse_url,
            schema=settings.warehouse_schema,
            api_schema=settings.warehouse_api_schema,
            reader_role=settings.warehouse_api_role,
        )
    except ApiSetupError as exc:
        _fail(str(exc), code=1)
        return
    granted = " (granted to authenticator)" if done.granted_to_authenticator else ""
    typer.echo(
        f"API views in schema {done.api_schema}: {', '.join(done.views)}; readable by role "
        f"{done.reader_role}{granted} only. On Supabase, add {done.api_schema} to the exposed "
        "schemas (Project Settings > Data API)."
    )


def _upgrade_app_tables(url: str, revision: str) -> None:
    import sqlalchemy as sa

    from writeback.migrate import AppDatabaseError, upgrade_app
    from writeback.preflight import shown_url

    try:
        done = upgrade_app(url, revision)
    except AppDatabaseError as exc:
        _fail(str(exc))
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        _fail(
            f"cannot migrate the app database at SUPABASE_DB_URL={shown_url(url)}: {reason}",
            code=1,
        )
    typer.echo(f"app tables at revision {done}")


@app.command()
def backfill(
    since: Annotated[str, typer.Option(help="ISO date or datetime: start of the range.")],
    until: Annotated[str, typer.Option(help="ISO date or datetime: end (after --since).")],
    entities: Annotated[str, typer.Option(help=ENTITIES_HELP)] = "all",
    chunk_size: Annotated[int | None, typer.Option(help="Records per chunk.", min=1)] = None,
) -> None:
    """Re-read a date range in windows of at most 30 days; rerun to resume after a failure."""
    start, end = parse_instant(since, "--since"), parse_instant(until, "--until")
    chosen = _check_arguments(entities, None, start, end)
    try:
        settings = load_settings()
        settings.finale()
    except ConfigError as exc:
        _fail(str(exc))
        return
    _preflight(settings)
    from flows.backfill import finale_backfill
    from pipeline.entities import ENTITIES

    _quiet_console()
    names = [name for name in chosen if ENTITIES[name].incremental]
    from invsync.prefect_server import temporary_server

    with temporary_server(), typer.progressbar(length=100, label="backfill") as bar:
        shown = 0

        def progress(done: int, total: int) -> None:
            nonlocal shown
            target = int(100 * done / total)
            bar.update(target - shown)
            shown = target

        state = finale_backfill(
            since=start,
            until=end,
            entities=names,
            chunk_size=chunk_size,
            on_progress=progress,
            return_state=True,
        )
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        typer.secho(
            f"backfill failed: {outcome}; run the same command again to resume",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(
        f"backfill {outcome.backfill_id}: {outcome.windows} windows "
        f"({outcome.skipped} already done)"
    )
    for name, counts in outcome.entities.items():
        typer.echo(f"  {name:16} " + " ".join(f"{k}={v}" for k, v in counts.items()))


def run_writeback_flow(**params: Any) -> tuple[bool, WritebackSummary]:
    """Run the ``supabase-to-finale`` flow; return (succeeded, its summary)."""
    from datetime import UTC, datetime

    from flows.supabase_to_finale import WritebackFailed, supabase_to_finale
    from invsync.prefect_server import temporary_server
    from writeback.run import WritebackSummary

    _quiet_console()
    with temporary_server(), _heartbeat_only_if_configured():
        state = supabase_to_finale(**params, return_state=True)
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, WritebackFailed):
        summary = outcome.summary or WritebackSummary(run_id="", started_at=datetime.now(UTC))
        if outcome.summary is None:
            summary.finish("failed", str(outcome))
        return False, summary
    if isinstance(outcome, BaseException):
        failed = WritebackSummary(run_id="", started_at=datetime.now(UTC))
        return False, failed.finish("failed", str(outcome))
    assert isinstance(outcome, WritebackSummary), f"got {type(outcome).__name__}"
    return True, outcome


@app.command()
def writeback(
    limit: Annotated[
        int | None, typer.Option(help="Most requests to process in this run.", min=1)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary JSON.")] = False,
) -> None:
    """Push purchase-order requests from the app (SUPABASE_DB_URL) to Finale once
    (exit 0 success, 1 a request or the run failed, 2 bad settings, 3 another run busy)."""
    try:
        settings = load_settings()
        settings.finale()
        app_url = settings.app_db_url()
    except ConfigError as exc:
        _fail(str(exc))
        return
    from pipeline.preflight import PreflightError
    from writeback.preflight import check_app_database, check_catalogue

    try:
        check_app_database(app_url)
    except PreflightError as exc:
        _fail(str(exc), code=1)
    _preflight(settings)
    try:
        check_catalogue(settings.warehouse_url)
    except PreflightError as exc:
        _fail(str(exc), code=1)
    ok, summary = run_writeback_flow(limit=limit)
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2))
    else:
        for line in summary.requests:
            why = f"  ({_first_line(line['error'])})" if line["error"] else ""
            typer.echo(
                f"request {line['request_id']:<8} {line['outcome']:10} "
                f"{line['finale_order_id'] or '-':16} {line['finale_status'] or '-':16}{why}"
            )
        counts = " ".join(f"{name}={count}" for name, count in summary.counts.items())
        typer.echo(f"write-back {summary.status}: {counts}")
        if not ok or summary.status == "skipped":
            color = typer.colors.RED if not ok else typer.colors.YELLOW
            typer.secho(
                f"write-back {summary.status}: {_first_line(summary.error or '')}",
                fg=color,
                err=True,
            )
    if not ok:
        raise typer.Exit(1)
    raise typer.Exit(EXIT_SKIPPED if summary.status == "skipped" else 0)


@app.command()
def setup() -> None:
    """Create the Prefect work pool and the shared Finale rate limit (idempotent)."""
    from deployments.setup import setup_prefect

    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail(str(exc))
        return
    done = setup_prefect(settings)
    limit = done["rate_limit"]
    typer.echo(
        f"work pool {done['work_pool']} "
        f"{'created' if done['work_pool_created'] else 'already exists'}; "
        f"global rate limit {limit['name']!r}: {limit['slots']} slots, "
        f"{limit['slot_decay_per_second']:.2f}/s"
    )


@app.command()
def sandbox(
    port: int = 8700,
    host: str = "127.0.0.1",
    products: int = 1000,
    seed: int = 42,
    rate_limit: Annotated[int, typer.Option(help="Requests per minute; 0 = off.")] = 120,
    faults: Annotated[str, typer.Option(help="e.g. '500:0.05,timeout:0.01'.")] = "",
    fault_seed: int = 0,
    max_entities: int = 120_000,
    account: str = "acme",
    api_key: str = "sandbox-key",
    api_secret: str = "sandbox-secret",
) -> None:
    """Serve a local Finale sandbox (fake credentials, generated data)."""
    from sandbox.server import SandboxConfig, serve

    serve(
        SandboxConfig(
            port=port,
            host=host,
            products=products,
            seed=seed,
            rate_limit_per_minute=rate_limit,
            faults=faults,
            fault_seed=fault_seed,
            max_entities=max_entities,
            account=account,
            api_key=api_key,
            api_secret=api_secret,
        )
    )


@app.command()
def demo(
    products: Annotated[int, typer.Option(help="Size of the sandbox account.")] = 2000,
    warehouse_url: Annotated[
        str, typer.Option(help="Where to load; default: SQLite under ./data/.")
    ] = "sqlite:///./data/demo.db",
) -> None:
    """No settings needed: sandbox -> full sync -> changes -> incremental sync."""
    from invsync.demo import run_demo

    sys.exit(
        run_demo(products=products, warehouse_url=warehouse_url, sync=run_sync, echo=typer.echo)
    )


#: The entities files may hold (``formats.entities.FILE_ENTITIES``, which the help must not
#: import): the sync's, plus the purchase-order lines and the app's requests.
FILE_ENTITY_NAMES = (
    "facilities",
    "vendors",
    "products",
    "stock",
    "purchase_orders",
    "purchase_order_lines",
    "purchase_order_requests",
)
FILE_FORMATS = ("csv", "json", "jsonl", "xml", "parquet")


def _file_entity(name: str) -> Any:
    from formats.entities import FILE_ENTITIES

    if name not in FILE_ENTITIES:
        _fail(f"unknown entity {name!r}; choose from {', '.join(FILE_ENTITY_NAMES)}")
    return FILE_ENTITIES[name]


def _warehouse_engine() -> Any:
    """The warehouse engine (migrated), or exit 2 (settings) / 1 (unreachable)."""
    from pipeline.preflight import PreflightError, check_warehouse
    from warehouse.db import create_warehouse_engine

    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail(str(exc))
        raise
    try:
        check_warehouse(settings.warehouse_url, schema=settings.warehouse_schema)
    except PreflightError as exc:
        _fail(str(exc), code=1)
    return create_warehouse_engine(settings.warehouse_url, schema=settings.warehouse_schema)


@app.command("export")
def export_command(
    entity: Annotated[str, typer.Argument(help=f"One of: {', '.join(FILE_ENTITY_NAMES)}.")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help=f"One of: {', '.join(FILE_FORMATS)}.")
    ] = "csv",
    since: Annotated[
        str | None,
        typer.Option(help="ISO date or datetime: only rows with last_updated_at from then on."),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="File to write (default stdout; parquet needs one)."),
    ] = None,
) -> None:
    """Write an entity's live warehouse rows as CSV, JSON, JSON Lines, XML or Parquet
    (exit 0 written, 1 warehouse unreachable or a value the format cannot carry, 2 bad
    arguments)."""
    start = parse_instant(since, "--since")
    if fmt not in FILE_FORMATS:
        _fail(f"--format {fmt!r} is not a format; choose from {', '.join(FILE_FORMATS)}")
    if fmt == "parquet" and output is None:
        _fail("--format parquet is binary: give --output PATH")
    spec = _file_entity(entity)
    if start is not None and spec.cursor is None:
        _fail(
            f"--since cannot filter {entity}: its table ({spec.table.name}) has no "
            "last_updated_at; leave out --since to export it whole"
        )
    from formats.export import ExportError, export

    engine = _warehouse_engine()
    try:
        with engine.connect() as conn:
            if fmt == "parquet":
                count = export(conn, spec, fmt, str(output), since=start)
            elif output is None:
                count = export(conn, spec, fmt, sys.stdout, since=start)
                sys.stdout.flush()
            else:
                with open(output, "w", encoding="utf-8", newline="") as out:
                    count = export(conn, spec, fmt, out, since=start)
    except BrokenPipeError:
        # The reader stopped early (``| head``), as with any Unix tool: no error, no trace.
        # Point stdout at devnull so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    except (ExportError, OSError) as exc:
        if output is not None and not isinstance(exc, FileNotFoundError):
            # A file cut short looks complete to whoever opens it: leave none behind.
            Path(output).unlink(missing_ok=True)
        if isinstance(exc, ExportError):
            _fail(str(exc), code=1)
        _fail(f"--output {output}: {getattr(exc, 'strerror', None) or exc}")
        return
    finally:
        engine.dispose()
    typer.echo(
        f"exported {count} {entity} row(s) as {fmt}" + (f" to {output}" if output else ""), err=True
    )


@app.command("import")
def import_command(
    entity: Annotated[str, typer.Argument(help=f"One of: {', '.join(FILE_ENTITY_NAMES)}.")],
    file: Annotated[str, typer.Argument(help="The file to import.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help=f"One of: {', '.join(FILE_FORMATS)} (default: the extension)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Validate a file's records and load them like a sync (exit 0 all loaded or unchanged,
    1 some records quarantined or the warehouse unreachable, 2 bad arguments or a file that
    cannot be read)."""
    from formats.imports import import_file
    from formats.read import FileFormatError, format_of

    spec = _file_entity(entity)
    try:
        fmt = format_of(file, fmt)
    except FileFormatError as exc:
        _fail(str(exc))
        raise
    engine = _warehouse_engine()
    try:
        summary = import_file(engine, spec, file, fmt)
    except FileFormatError as exc:
        _fail(str(exc))
        raise
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2))
    else:
        typer.echo(
            f"{entity}: read {summary.read} record(s) from {file} ({fmt}): "
            f"loaded {summary.loaded} (inserted {summary.inserted}, updated {summary.updated}), "
            f"unchanged {summary.unchanged}, quarantined {summary.quarantined}"
        )
        for refused in summary.refused:
            typer.echo(f"  refused {refused['key'] or '(no key)'}: {refused['reasons']}")
        if summary.quarantined > len(summary.refused):
            typer.echo(
                f"  ... and {summary.quarantined - len(summary.refused)} more: see the "
                f"quarantine table (run_id {summary.run_id})"
            )
    raise typer.Exit(1 if summary.quarantined else 0)


def main() -> None:
    """Console-script entry point."""
    # The CLI's temporary Prefect server would try to send usage analytics, which fails
    # (loudly) on a machine without internet; off unless the user chose otherwise.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    tune_garbage_collector()
    try:
        app()
    finally:
        freeze_objects_before_exit()


if __name__ == "__main__":
    main()
