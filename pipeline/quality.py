"""The data-quality report: runs, open quarantine by rule, and whether source and warehouse agree.

Built from ``sync_runs`` and ``quarantine`` only, so it describes exactly what the pipeline
did. The daily deployment publishes it as Prefect artifacts and writes it as JSON for
downstream analytics.

Quarantine is reported as DISTINCT OPEN records: the ``quarantine`` table keeps one open
entry per bad record (``warehouse.state.record_quarantine``) until it loads cleanly, so
the same unchanged record read by many runs counts once. The runs' own ``quarantined``
counters (records read that failed, a record read by three runs counting three times) are
reported next to it, under their own name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from pipeline.entities import ENTITIES
from schemas.tables import quarantine
from warehouse.runs import FAILURE_STATUSES, runs_started_since

#: What separates the reasons of one record in ``quarantine.reasons``.
REASON_SEPARATOR = "; "
#: Where a reason's offending value starts: ``<rule> (got <value>...)``.
VALUE_MARK = " (got "
#: The prefix of a reason about a child row (an order line): ``line <n>: <reason>``.
_LINE_PREFIX = re.compile(r"^line \d+: ")


def reason_rule(reason: str) -> str:
    """The rule a reason names, without the child line or the offending value.

    ``"line 2: cost must be between 0 and 1e+09 (got -5.0)"`` ->
    ``"cost must be between 0 and 1e+09"``; a reason without either is its own rule.
    """
    rule = _LINE_PREFIX.sub("", reason.strip(), count=1)
    return rule.split(VALUE_MARK, 1)[0].strip()


def split_reasons(text: str) -> list[str]:
    """The reasons of one ``quarantine.reasons`` text (joined by ``"; "``).

    A reason with a value ends with its ``)``; while it does not, the ``"; "`` was part of
    the value (text like ``(got 'a; b')``), so the next piece is joined back to it. So is
    the piece after a rule whose own parentheses are still open (``... (sync products
    first; a SKU is never guessed from a URL)``).
    """
    reasons: list[str] = []
    for piece in text.split(REASON_SEPARATOR):
        last = reasons[-1] if reasons else ""
        in_value = VALUE_MARK in last and not last.endswith(")")
        in_rule = VALUE_MARK not in last and last.count("(") > last.count(")")
        if in_value or in_rule:
            reasons[-1] = last + REASON_SEPARATOR + piece
        else:
            reasons.append(piece)
    return [r.strip() for r in reasons if r.strip()]


def record_rules(text: str) -> set[str]:
    """The distinct rules one record fails (two order lines missing a price: one rule)."""
    return {reason_rule(r) for r in split_reasons(text)}


def open_rule_counts(
    conn: sa.Connection, entities: Collection[str] | None = None
) -> dict[str, tuple[int, Counter[str]]]:
    """Per entity: the number of open quarantine records and, per rule, how many fail it.

    Args:
        conn: the warehouse.
        entities: only these entities' records (default: every entity's).
    """
    out: dict[str, tuple[int, Counter[str]]] = {}
    query = sa.select(quarantine.c.entity, quarantine.c.reasons).where(
        quarantine.c.resolved_at.is_(None)
    )
    if entities is not None:
        query = query.where(quarantine.c.entity.in_(sorted(entities)))
    for entity, reasons in conn.execute(query):
        records, rules = out.get(entity, (0, Counter()))
        rules.update(record_rules(reasons))
        out[entity] = (records + 1, rules)
    return out


def quality_report(
    conn: sa.Connection, *, hours: int = 24, now: datetime | None = None
) -> dict[str, Any]:
    """Summarise the last ``hours`` of runs, and the quarantine as it stands, per entity.

    Returns:
        ``{"generated_at", "since", "entities": [...]}`` with, per entity:

        - ``runs``, ``failed_runs``, ``extracted``: the runs started since ``since``;
        - ``quarantined``, ``quarantine_share``: records those runs read and quarantined
          (per read: a record read by three runs counts three times), over ``extracted``;
        - ``open_quarantine``: distinct records in quarantine now (open entries);
        - ``open_by_rule``: ``[[rule, open records failing it]]`` for EVERY rule, most
          first (``reason_rule``: the value and line number are not part of the rule);
        - ``open_rule_failures``: the (open record, rule) pairs. The ``open_by_rule``
          counts add up to it; it is at least ``open_quarantine`` (a record failing two
          rules counts under each);
        - ``last_reconcile``: the latest full run's counts and whether checksums match.
    """
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=hours)
    open_counts = open_rule_counts(conn)
    entities = []
    for name in ENTITIES:
        runs = runs_started_since(conn, name, since)
        open_records, rules = open_counts.get(name, (0, Counter()))
        extracted = sum(r.extracted for r in runs)
        quarantined = sum(r.quarantined for r in runs)
        reconciles = [r for r in runs if r.source_checksum is not None]
        last = reconciles[-1] if reconciles else None
        entities.append(
            {
                "entity": name,
                "runs": len(runs),
                "failed_runs": sum(r.status in FAILURE_STATUSES for r in runs),
                "extracted": extracted,
                "quarantined": quarantined,
                "quarantine_share": round(quarantined / extracted, 6) if extracted else 0.0,
                "open_quarantine": open_records,
                # Ties by rule text, so the report is stable from one day to the next.
                "open_by_rule": [
                    [rule, n] for rule, n in sorted(rules.items(), key=lambda i: (-i[1], i[0]))
                ],
                "open_rule_failures": sum(rules.values()),
                "last_reconcile": None
                if last is None
                else {
                    "at": last.started_at.isoformat() if last.started_at else None,
                    "source_count": last.source_count,
                    "warehouse_count": last.warehouse_count,
                    "checksums_match": last.source_checksum == last.warehouse_checksum,
                },
            }
        )
    return {"generated_at": now.isoformat(), "since": since.isoformat(), "entities": entities}
