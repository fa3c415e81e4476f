"""``invsync``: a small command line over the flows, the sandbox and the warehouse.

This is the edge: it loads settings once and reports configuration problems as one clear
line naming the variable, with exit code 2. Sync failures exit 1.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from invsync.settings import ConfigError, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
db_app = typer.Typer(help="Warehouse schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


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


def _print_summary(results: dict[str, Any]) -> None:
    for name, r in results.items():
        if r.get("status") == "failed" and "extracted" not in r:
            typer.echo(f"{name:16} FAILED  {r.get('error')}")
            continue
        typer.echo(
            f"{name:16} {r['status']:10} extracted={r['extracted']:<8} "
            f"inserted={r['inserted']:<8} updated={r['updated']:<8} "
            f"unchanged={r['unchanged']:<8} quarantined={r['quarantined']:<6} "
            f"deleted={r['deleted']}"
        )


def run_sync(**params: Any) -> tuple[bool, dict[str, Any]]:
    """Run the ``finale-sync`` flow; return (succeeded, {"run_id", "entities"})."""
    from flows.finale_sync import SyncFailed, finale_sync

    state = finale_sync(**params, return_state=True)
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, SyncFailed):
        return False, outcome.summary
    if isinstance(outcome, BaseException):
        return False, {"error": str(outcome), "entities": {}}
    return True, outcome


@app.command()
def sync(
    entities: Annotated[str, typer.Option(help="Comma-separated entities, or 'all'.")] = "all",
    mode: Annotated[str, typer.Option(help="incremental or full.")] = "incremental",
    since: Annotated[str | None, typer.Option(help="ISO start of the range to read.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO end of the range to read.")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Records per chunk.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Do not commit rows.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status JSON.")] = False,
) -> None:
    """Sync Finale into the warehouse (exit 0 on success, 1 on failure)."""
    from pipeline.entities import resolve_entities

    try:
        settings = load_settings()
        settings.finale()
        names = [s.name for s in resolve_entities(entities)]
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
        return
    ok, summary = run_sync(
        entities=names,
        mode=mode,
        since=parse_instant(since, "--since"),
        until=parse_instant(until, "--until"),
        chunk_size=chunk_size,
        dry_run=dry_run,
    )
    if as_json:
        typer.echo(json.dumps(_statuses(settings.warehouse_url, names), indent=2))
    else:
        _print_summary(summary.get("entities", {}))
        if not ok:
            typer.secho(f"sync failed: {summary.get('error', '')}", fg=typer.colors.RED, err=True)
    raise typer.Exit(0 if ok else 1)


def _statuses(warehouse_url: str, names: list[str] | None = None) -> list[dict[str, Any]]:
    from pipeline.status import all_statuses
    from warehouse.db import create_warehouse_engine
    from warehouse.migrate import upgrade

    upgrade(warehouse_url)
    engine = create_warehouse_engine(warehouse_url)
    try:
        with engine.connect() as conn:
            rows = all_statuses(conn)
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
    rows = _statuses(settings.warehouse_url)
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


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the warehouse migrations (also done automatically before each sync)."""
    from warehouse.migrate import current_revision, upgrade

    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail(str(exc))
        return
    upgrade(settings.warehouse_url, revision)
    typer.echo(f"warehouse at revision {current_revision(settings.warehouse_url)}")


@app.command()
def backfill(
    since: Annotated[str, typer.Option(help="ISO start of the range to re-read.")],
    until: Annotated[str, typer.Option(help="ISO end of the range to re-read.")],
    entities: Annotated[str, typer.Option(help="Comma-separated entities, or 'all'.")] = "all",
    chunk_size: Annotated[int | None, typer.Option(help="Records per chunk.")] = None,
) -> None:
    """Re-read a date range in windows of at most 30 days; rerun to resume after a failure."""
    from flows.backfill import finale_backfill
    from pipeline.entities import resolve_entities

    try:
        settings = load_settings()
        settings.finale()
        names = [s.name for s in resolve_entities(entities) if s.incremental]
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
        return
    start, end = parse_instant(since, "--since"), parse_instant(until, "--until")
    with typer.progressbar(length=100, label="backfill") as bar:
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
        f"backfill {outcome['backfill_id']}: {outcome['windows']} windows "
        f"({outcome['skipped']} already done)"
    )
    for name, counts in outcome["entities"].items():
        typer.echo(f"  {name:16} " + " ".join(f"{k}={v}" for k, v in counts.items()))


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

    sys.exit(run_demo(products=products, warehouse_url=warehouse_url, echo=typer.echo))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
