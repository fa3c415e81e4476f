"""Watch rules: turn changes in the warehouse into outbox events, each change announced once.

A rule selects, from the warehouse, the records it watches, each with a value: every
live purchase order with its status, or every SKU whose stock is below its reorder point.
``announce`` compares that with what earlier events announced (``event_watch``) and, in
the caller's transaction, records one event per record that appeared (``on_new``) or
whose value changed (``on_change``), then stores the new state. A record that left the
selection is forgotten, so it is announced again if it comes back (stock that was
restocked and falls below its reorder point again).

Because the comparison is with the warehouse as it is, not with what one load wrote,
nothing is announced twice and nothing is lost: a change whose transaction rolled back
left no row to announce, and a change committed without its event (a run that died
between two transactions) is announced by the next evaluation.

The first evaluation of a rule is its baseline: it stores the state without events, so
connecting the project to an account with years of orders does not announce each one as
new. A row with an empty key marks a rule as started.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from events.outbox import json_safe, record_events
from schemas.tables import event_watch

#: Marks a rule whose baseline is stored (keys of watched records are never empty).
_STARTED = ""

#: Keys per ``IN (...)`` list: well inside every backend's limit on bound parameters.
_KEYS_PER_QUERY = 5_000


@dataclass(frozen=True, eq=False)
class WatchRule:
    """Records of an entity to watch, and the events their changes raise.

    Attributes:
        name: the rule's id in ``event_watch`` (keep it stable: renaming starts a new
            baseline).
        select: the query of watched records: its first column is the record's key, its
            second the watched value, the others go into the event's data under their
            labels. Each rule is evaluated under its entity's sync lock, so no two runs
            write its state at once.
        key: the key expression of ``select``, to restrict it to the records one load
            wrote.
        key_column: the column of the entity's loaded rows that holds the same keys.
        on_new: event type raised when a record enters the selection (None: none).
        on_change: event type raised when its value changes; its data also has
            ``previous_<value label>`` (None: none).
    """

    name: str
    select: sa.Select[Any]
    key: sa.ColumnElement[Any]
    key_column: str
    on_new: str | None = None
    on_change: str | None = None


@dataclass(frozen=True)
class Announced:
    """What one evaluation did: events recorded by type, and whether it was the baseline."""

    events: dict[str, int]
    baseline: bool = False


def announce(
    conn: sa.Connection,
    rule: WatchRule,
    *,
    entity: str,
    now: datetime,
    run_id: str | None = None,
    keys: Collection[Any] | None = None,
) -> Announced:
    """Compare the rule's records with the announced state; record events and the new state.

    Args:
        conn: a connection inside the transaction that wrote the records.
        rule: the rule.
        entity: the entity the events are about.
        now: the events' time and the state's ``updated_at``.
        run_id: the sync run that wrote the records.
        keys: only these records (those one load wrote; empty: none); None = all of
            them, which also forgets records that left the selection. A rule without a
            baseline takes it over all records, whatever ``keys`` says.

    Returns:
        The number of events recorded per type.
    """
    started = _started(conn, rule)
    if keys is not None and not started:
        keys = None  # the baseline covers every record, not just one chunk's
    current: dict[str, tuple[str, dict[str, Any]]] = {}
    value_label = ""
    for key_batch in _batches(keys):
        query = rule.select
        if key_batch is not None:
            query = query.where(rule.key.in_(key_batch))
        result = conn.execute(query)
        labels = list(result.keys())
        value_label = labels[1]
        for row in result:
            data = json_safe(dict(zip(labels, row, strict=True)))
            current[str(row[0])] = (_text(row[1]), data)
    stored = _stored(conn, rule, keys)
    new = sorted(k for k in current if k not in stored)
    changed = sorted(k for k in current if k in stored and stored[k] != current[k][0])
    gone = sorted(k for k in stored if k not in current)
    counts: dict[str, int] = {}
    if started:
        if rule.on_new and new:
            rows = [(k, current[k][1]) for k in new]
            record_events(
                conn, rule.on_new, entity=entity, rows=rows, run_id=run_id, occurred_at=now
            )
            counts[rule.on_new] = len(rows)
        if rule.on_change and changed:
            rows = [(k, {**current[k][1], f"previous_{value_label}": stored[k]}) for k in changed]
            record_events(
                conn, rule.on_change, entity=entity, rows=rows, run_id=run_id, occurred_at=now
            )
            counts[rule.on_change] = len(rows)
    _store(
        conn,
        rule,
        now,
        new=[(k, current[k][0]) for k in new],
        changed=[(k, current[k][0]) for k in changed],
        gone=gone,
        start=not started,
    )
    return Announced(counts, baseline=not started)


def _batches(keys: Collection[Any] | None) -> Iterator[list[Any] | None]:
    if keys is None:
        yield None
        return
    ordered = list(keys)
    for start in range(0, len(ordered), _KEYS_PER_QUERY):
        yield ordered[start : start + _KEYS_PER_QUERY]


def _text(value: Any) -> str:
    """The watched value as stored in ``event_watch.value`` (text; "" for null)."""
    safe = json_safe(value)
    return "" if safe is None else str(safe)


def _started(conn: sa.Connection, rule: WatchRule) -> bool:
    query = sa.select(sa.literal(1)).where(
        event_watch.c.rule == rule.name, event_watch.c.entity_key == _STARTED
    )
    return conn.execute(query).first() is not None


def _stored(conn: sa.Connection, rule: WatchRule, keys: Collection[Any] | None) -> dict[str, str]:
    stored: dict[str, str] = {}
    for key_batch in _batches(keys):
        query = sa.select(event_watch.c.entity_key, event_watch.c.value).where(
            event_watch.c.rule == rule.name, event_watch.c.entity_key != _STARTED
        )
        if key_batch is not None:
            query = query.where(event_watch.c.entity_key.in_([str(k) for k in key_batch]))
        stored.update(conn.execute(query).tuples().all())
    return stored


def _store(
    conn: sa.Connection,
    rule: WatchRule,
    now: datetime,
    *,
    new: Sequence[tuple[str, str]],
    changed: Sequence[tuple[str, str]],
    gone: Sequence[str],
    start: bool,
) -> None:
    """Make ``event_watch`` hold the rule's current state."""
    added = [*new, (_STARTED, "started")] if start else list(new)
    if added:
        conn.execute(
            event_watch.insert(),
            [{"rule": rule.name, "entity_key": k, "value": v, "updated_at": now} for k, v in added],
        )
    if changed:
        conn.execute(
            event_watch.update()
            .where(
                event_watch.c.rule == rule.name,
                event_watch.c.entity_key == sa.bindparam("key"),
            )
            .values(value=sa.bindparam("new_value"), updated_at=now),
            [{"key": k, "new_value": v} for k, v in changed],
        )
    for batch in _batches(gone):
        assert batch is not None
        conn.execute(
            event_watch.delete().where(
                event_watch.c.rule == rule.name, event_watch.c.entity_key.in_(batch)
            )
        )
