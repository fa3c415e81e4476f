"""``invsync events``: outbound event deliveries: list them, replay them, deliver now.

Exit codes as ``invsync sync``: 0 success; 1 a delivery died or the run failed (or the
warehouse cannot be reached); 2 bad arguments, settings or subscribers file; 3 nothing
failed but a subscriber was left alone because another run was delivering to it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # the help must not import the warehouse layer
    from events.delivery import DeliveryCounts

events_app = typer.Typer(
    help="Outbound event deliveries: list them, replay them, deliver now (docs/events.md).",
    no_args_is_help=True,
)

STATUSES = ("pending", "delivered", "dead")


def _cli() -> Any:
    # invsync.cli imports this module to register it; its helpers are looked up at call time.
    from invsync import cli

    return cli


def _subscriber_configs() -> list[Any]:
    """The enabled subscribers (no secrets needed), or exit 2 naming the file and field."""
    from events.subscribers import SubscriberConfigError, load_subscribers
    from invsync.settings import ConfigError, load_settings

    try:
        return load_subscribers(load_settings().event_subscribers_file)
    except (ConfigError, SubscriberConfigError) as exc:
        _cli()._fail(str(exc))
        raise


def _text(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


@events_app.command("list")
def list_command(
    status: Annotated[
        str | None, typer.Option(help=f"Only deliveries in this state: {', '.join(STATUSES)}.")
    ] = None,
    event_type: Annotated[
        str | None, typer.Option("--type", help="An event type, or 'prefix.*'.")
    ] = None,
    subscriber: Annotated[str | None, typer.Option(help="Only this subscriber's.")] = None,
    limit: Annotated[int, typer.Option(help="Most rows, newest event first.", min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Deliveries, newest event first: event, subscriber, state, attempts, last error."""
    from events.admin import list_deliveries

    cli = _cli()
    if status is not None and status not in STATUSES:
        cli._fail(f"--status {status!r} is not a state; choose from {', '.join(STATUSES)}")
    engine = cli._warehouse_engine()
    try:
        with engine.connect() as conn:
            rows = list_deliveries(
                conn, status=status, event_type=event_type, subscriber=subscriber, limit=limit
            )
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps([{k: _text(v) for k, v in r.items()} for r in rows], indent=2))
        return
    if not rows:
        typer.echo("no deliveries match")
    for r in rows:
        why = f"  ({cli._first_line(r['last_error'])})" if r["last_error"] else ""
        subject = f"{r['entity']}:{r['entity_key']}" if r["entity_key"] else r["entity"]
        typer.echo(
            f"{r['event_id']}  {r['type']:30} {subject:24} {r['subscriber']:20} "
            f"{r['status']:9} attempts={r['attempts']}{why}"
        )


@events_app.command("replay")
def replay_command(
    event_id: Annotated[
        list[str] | None, typer.Option("--id", help="An event id (repeat for more).")
    ] = None,
    subscriber: Annotated[
        str | None,
        typer.Option(help="Only to this subscriber; alone: its dead deliveries."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="ISO date or datetime: every event that occurred from then on."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was queued as JSON.")] = False,
) -> None:
    """Queue deliveries again (pending, attempts 0); the next delivery run sends them."""
    from events.admin import replay

    cli = _cli()
    start = cli.parse_instant(since, "--since")
    if not event_id and subscriber is None and start is None:
        cli._fail("say what to replay: --id EVENT_ID, --subscriber NAME and/or --since ISO")
    configs = _subscriber_configs()
    engine = cli._warehouse_engine()
    try:
        with engine.begin() as conn:
            queued = replay(
                conn,
                configs,
                now=datetime.now(UTC),
                event_ids=event_id or (),
                subscriber=subscriber,
                since=start,
            )
    except ValueError as exc:
        cli._fail(str(exc))
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(queued, indent=2))
        return
    for q in queued:
        typer.echo(
            f"queued {q['event_id']}  {q['type']:30} to {q['subscriber']:20} (was {q['was']})"
        )
    typer.echo(f"{len(queued)} deliveries queued; `invsync events deliver` sends them now")


def run_deliver_flow() -> tuple[bool, DeliveryCounts | str]:
    """Run the ``deliver-events`` flow once; return (succeeded, its counts or the error)."""
    from events.delivery import DeliveryCounts
    from flows.deliver_events import DeliveriesFailed, deliver_events
    from invsync.prefect_server import temporary_server

    cli = _cli()
    cli._quiet_console()
    with temporary_server(), cli._heartbeat_only_if_configured():
        state = deliver_events(return_state=True)
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, DeliveriesFailed):
        return False, outcome.counts
    if isinstance(outcome, BaseException):
        return False, cli._first_line(outcome)
    counts = DeliveryCounts()
    counts.subscribers = {name: _counts(c) for name, c in outcome["subscribers"].items()}
    return True, counts


def _counts(values: dict[str, Any]) -> Any:
    from events.delivery import SubscriberCounts

    return SubscriberCounts(**values)


@events_app.command("deliver")
def deliver_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Deliver due events now (the deliver-events flow, once; exit 0, 1, 2 or 3)."""
    from events.subscribers import (
        SubscriberConfigError,
        process_environment,
        subscribers_from_settings,
    )
    from invsync.settings import ConfigError, load_settings

    cli = _cli()
    try:
        settings = load_settings()
        # Checked here so a missing secret is one line naming it, before Prefect starts.
        subscribers_from_settings(settings.event_subscribers_file, process_environment())
    except (ConfigError, SubscriberConfigError) as exc:
        cli._fail(str(exc))
    cli._warehouse_engine().dispose()  # reachable and migrated, or exit 1
    ok, outcome = run_deliver_flow()
    if isinstance(outcome, str):
        typer.secho(f"delivery failed: {outcome}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(outcome.to_json(), indent=2))
    else:
        for name, c in outcome.subscribers.items():
            note = " (another run is delivering to it)" if c.locked else ""
            note += f"  ({cli._first_line(c.error)})" if c.error else ""
            typer.echo(
                f"{name:20} delivered={c.delivered:<6} retried={c.retried:<6} dead={c.dead:<6} "
                f"skipped_open_circuit={c.skipped_open_circuit:<6} pending={c.pending:<6} "
                f"circuit={c.circuit}{note}"
            )
        if not ok:
            typer.secho(
                f"delivery failed: {outcome.dead} dead; see `invsync events list --status dead`",
                fg=typer.colors.RED,
                err=True,
            )
    if not ok:
        raise typer.Exit(1)
    raise typer.Exit(cli.EXIT_SKIPPED if outcome.locked else 0)
