"""The data-quality checks: plain functions of a warehouse connection, per entity.

Nothing here names an entity: keys come from the table's primary key, references and
unique columns from the ``EntitySpec``, limits from the thresholds file
(``pipeline.dq.config``). "Live rows" are the rows a full sync has not marked deleted
(``deleted_at`` is null). Each check returns ``CheckResult``s (entity, check, subject,
measured value, threshold, passed, detail):

- ``row_count``: live rows, at least ``min_rows``;
- ``row_change``: the relative change of live rows since the previous measurement, no
  worse than ``-max_row_drop``;
- ``completeness``: per key column (the primary key, ``unique_columns`` and the columns the
  thresholds name), the share of live rows with a value;
- ``uniqueness``: per unique column set (the key, ``unique_columns``), the surplus rows
  sharing a value;
- ``validity``: per pandera rule, the share of the entity's records (live rows plus
  open quarantine) failing it now (the open quarantine's reasons); one passing row with
  subject "" when no record fails any rule;
- ``referential``: per ``Reference``, the share of non-null values naming no row of the
  entity referred to (deleted rows count as present);
- ``data_freshness``: hours since the newest ``last_updated_at`` (tables that have one);
- ``sync_freshness``: hours since the last successful sync, against
  ``max_sync_age_intervals`` x the spec's ``expected_interval``;
- ``quarantine``: open quarantine records over the entity's records;
- ``reconciliation``: whether the last full run matched source and warehouse.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from pipeline.dq.config import CHECK_NAMES, DQConfig, Thresholds
from pipeline.entities import APP_ENTITIES, ENTITIES, EntitySpec, entity_spec
from pipeline.quality import open_rule_counts
from schemas.tables import sync_runs
from warehouse import dq
from warehouse.dq import CheckResult
from warehouse.runs import LOADED_STATUSES, count_finished_runs, last_finished_run

#: The column whose newest value says how fresh an entity's data is, where a table has it.
UPDATED_COLUMN = "last_updated_at"


@dataclass
class Measures:
    """What the checks of one entity share, read once.

    Attributes:
        now: the time ages are measured from.
        report_id: the report measuring (its own earlier rows are not "previous").
        rows: live rows of the entity's table.
        open_quarantine: open quarantine records, by rule.
        open_records: open quarantine records.
    """

    now: datetime
    report_id: str
    rows: int
    open_records: int
    open_rules: Counter[str]

    @property
    def records(self) -> int:
        """Live rows plus open quarantine records: the records the entity has."""
        return self.rows + self.open_records


Check = Callable[[sa.Connection, EntitySpec, Thresholds, Measures], list[CheckResult]]


def _live(table: sa.Table) -> sa.ColumnElement[bool]:
    return table.c.deleted_at.is_(None) if "deleted_at" in table.c else sa.true()


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _pct(value: float) -> str:
    return f"{value:.2%}"


def _result(
    spec: EntitySpec,
    check: str,
    measured: float | None,
    threshold: float | None,
    passed: bool,
    detail: str,
    subject: str = "",
) -> CheckResult:
    return CheckResult(spec.name, check, subject, measured, threshold, passed, detail)


def row_count(
    conn: sa.Connection, spec: EntitySpec, limits: Thresholds, m: Measures
) -> list[CheckResult]:
    """Live rows, at least ``min_rows``."""
    passed = m.rows >= limits.min_rows
    detail = f"{m.rows:,} live rows in {spec.table.name} (at least {limits.min_rows:,})"
    return [_result(spec, "row_count", m.rows, limits.min_rows, passed, detail)]


def row_change(
    conn: sa.Connection, spec: EntitySpec, limits: Thresholds, m: Measures
) -> list[CheckResult]:
    """The relative change of live rows since the previous ``row_count`` measurement."""
    previous = dq.previous_measure(conn, spec.name, "row_count", exclude_report=m.report_id)
    threshold = -limits.max_row_drop
    if previous is None or previous == 0:
        what = "no previous measurement" if previous is None else "previously 0 rows"
        return [_result(spec, "row_change", None, threshold, True, f"{what}; now {m.rows:,}")]
    change = (m.rows - previous) / previous
    passed = change >= threshold
    detail = (
        f"{int(previous):,} -> {m.rows:,} live rows ({change:+.1%}; "
        f"a drop of more than {limits.max_row_drop:.0%} fails)"
    )
    return [_result(spec, "row_change", change, threshold, passed, detail)]


def completeness_columns(spec: EntitySpec, limits: Thresholds) -> list[str]:
    """The key columns, the spec's unique columns (Finale URLs), then the columns the
    thresholds name (``min_completeness_by_column``), without repeats."""
    names = [*spec.key_columns, *spec.unique_columns, *limits.min_completeness_by_column]
    return list(dict.fromkeys(names))


def completeness(
    conn: sa.Connection, spec: EntitySpec, limits: Thresholds, m: Measures
) -> list[CheckResult]:
    """Per checked column, the share of live rows with a value."""
    table = spec.table
    columns = completeness_columns(spec, limits)
    query = sa.select(*(sa.func.count(table.c[c]) for c in columns)).where(_live(table))
    counts = conn.execute(query).one()
    out = []
    for column, filled in zip(columns, counts, strict=True):
        share = _share(int(filled), m.rows) if m.rows else 1.0
        minimum = limits.min_completeness_by_column.get(column, limits.min_completeness)
        detail = (
            f"{int(filled):,} of {m.rows:,} live rows have {column} ({_pct(share)}; "
            f"at least {_pct(minimum)})"
        )
        out.append(_result(spec, "completeness", share, minimum, share >= minimum, detail, column))
    return out


def uniqueness(
    conn: sa.Connection, spec: EntitySpec, limits: Thresholds, m: Measures
) -> list[CheckResult]:
    """Per unique column set (the key, then each of ``unique_columns``), surplus rows
    among live rows sharing a (non-null) value."""
    table = spec.table
    out = []
    for columns in [spec.key_columns, *([c] for c in spec.unique_columns)]:
        cols = [table.c[c] for c in columns]
        groups = (
            sa.select(sa.func.count().label("n"))
            .where(_live(table), *(c.is_not(None) for c in cols))
            .group_by(*cols)
            .having(sa.func.count() > 1)
            .subquery()
        )
        query = sa.select(
            sa.func.coalesce(sa.func.sum(groups.c.n - 1), 0), sa.func.count()
        ).select_from(groups)
        surplus, values = (int(v) for v in conn.execute(query).one())
        subject = "+".join(columns)
        passed = surplus <= limits.max_duplicates
        detail = (
            f"{surplus:,} surplus rows share {values:,} {subject} values"
            if surplus
            else f"every live {subject} is unique"
        )
        out.append(
            _result(spec, "uniqueness", surplus, limits.max_duplicates, passed, detail, subject)
        )
    return out


def validity(
    conn: sa.Connection, spec: EntitySpec, limits: Thresholds, m: Measures
) -> list[CheckResult]:
    """Per pandera rule the open quarantine records fail, their share of the records."""
    limit = limits.max_invalid_share
    if not m.open_rules:
        detail = "no open quarantine record fails a rule"
        return [_result(spec, "validity", 0.0, limit, True, detail)]
    out = []
    for rule, failing in sorted(m.open_rules.items(), key=lambda i: (-i[1], i[0])):
        share = _share(failing, m.records)
        detail = (
            f"{failing:,} of {m.records:,} records fail it ({_pct(share)}; at most {_pct(limit)})"
        )
        out.append(_result(spec, "validity", share, limit, share <= limit, detail, rule))
    return out


def referential(
    conn: sa.Connection, spec: EntitySpec, limits: Thresholds, m: Measures
) -> list[CheckResult]:
    """Per reference, the share of its non-null values that name no row referred to."""
    out = []
    for ref in spec.references:
        table = ref.table if ref.table is not None else spec.table
        target_spec = entity_spec(ref.entity)
        target_name = ref.target or _single_key(target_spec)
        # An alias, so a reference to the entity's own table (a parent facility) is not
        # correlated with the referring row itself.
        referred = target_spec.table.alias("referred")
        column, target = table.c[ref.column], referred.c[target_name]
        exists = sa.select(sa.literal(1)).where(target == column).exists()
        query = sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.case((~exists, 1), else_=0)), 0),
        ).where(_live(table), column.is_not(None))
        values, orphans = (int(v) for v in conn.execute(query).one())
        share = _share(orphans, values)
        limit = limits.max_orphan_share
        name = ref.name(spec.table)
        detail = (
            f"{orphans:,} of {values:,} {table.name}.{ref.column} values name no "
            f"{target_spec.table.name}.{target_name} ({_pct(share)}; at most {_pct(limit)})"
        )
        out.append(_result(spec, "referential", share, limit, share <= limit, detail, name))
    return out


def _single_key(spec: EntitySpec) -> str:
    keys = spec.key_columns
    if len(keys) != 1:
        raise ValueError(
            f"a reference to {spec.name} must name its target column: its key has "
            f"{len(keys)} columns ({', '.join(keys)})"
        )
    return keys[0]


def _hours(delta: timedelta) -> float:
    return round(delta / timedelta(hours=1), 4)


def data_freshness(
    conn: sa.Connection, spec: EntitySpec, limits: Thresholds, m: Measures
) -> list[CheckResult]:
    """Hours since the newest ``last_updated_at`` of the live rows (tables with one)."""
    table = spec.table
    if UPDATED_COLUMN not in table.c:
        return []
    newest = conn.execute(
        sa.select(sa.func.max(table.c[UPDATED_COLUMN])).where(_live(table))
    ).scalar()
    limit = limits.max_data_age_hours
    if newest is None:
        detail = f"no live row has {UPDATED_COLUMN}"
        return [_result(spec, "data_freshness", None, limit, True, detail)]
    newest = _aware(_as_datetime(newest))
    age = _hours(m.now - newest)
    detail = (
        f"newest {UPDATED_COLUMN} {newest.isoformat()} is {age:.1f} h old (at most {limit:g} h)"
    )
    return [_result(spec, "data_freshness", age, limit, age <= limit, detail)]


def _as_datetime(value: object) -> datetime:
    # SQLite hands MAX() of a timestamp column back as text, PostgreSQL as a datetime.
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def sync_freshness(
    conn: sa.Connection, spec: EntitySpec, limits: Thresholds, m: Measures
) -> list[CheckResult]:
    """Hours since the last successful sync, against ``max_sync_age_intervals`` x the
    spec's ``expected_interval``."""
    limit = _hours(spec.expected_interval * limits.max_sync_age_intervals)
    success = last_finished_run(conn, spec.name, LOADED_STATUSES)
    if success is None or success.finished_at is None:
        return [_result(spec, "sync_freshness", None, limit, False, "never synced successfully")]
    age = _hours(m.now - _aware(success.finished_at))
    detail = (
        f"last successful sync {age:.2f} h ago (expected every "
        f"{_hours(spec.expected_interval):g} h; at most {limit:g} h)"
    )
    return [_result(spec, "sync_freshness", age, limit, age <= limit, detail)]


def quarantine(
    conn: sa.Connection, spec: EntitySpec, limits: Thresholds, m: Measures
) -> list[CheckResult]:
    """Open quarantine records over the entity's records."""
    share = _share(m.open_records, m.records)
    limit = limits.max_open_quarantine_share
    detail = (
        f"{m.open_records:,} open quarantine records of {m.records:,} ({_pct(share)}; "
        f"at most {_pct(limit)})"
    )
    return [_result(spec, "quarantine", share, limit, share <= limit, detail)]


def reconciliation(
    conn: sa.Connection, spec: EntitySpec, limits: Thresholds, m: Measures
) -> list[CheckResult]:
    """Whether the last full run that reconciled matched source and warehouse (1 or 0)."""
    threshold = 1.0 if limits.require_reconciled else 0.0
    query = (
        sa.select(sync_runs)
        .where(sync_runs.c.entity == spec.name, sync_runs.c.source_checksum.is_not(None))
        .order_by(sync_runs.c.started_at.desc(), sync_runs.c.id.desc())
        .limit(1)
    )
    row = conn.execute(query).mappings().first()
    if row is None:
        return [_result(spec, "reconciliation", None, threshold, True, "no full run yet")]
    matched = (
        row["source_count"] == row["warehouse_count"]
        and row["source_checksum"] == row["warehouse_checksum"]
    )
    when = _aware(row["started_at"]).isoformat()
    detail = (
        f"full run of {when}: source {row['source_count']:,} / warehouse "
        f"{row['warehouse_count']:,} records, checksums {'match' if matched else 'differ'}"
    )
    measured = 1.0 if matched else 0.0
    return [_result(spec, "reconciliation", measured, threshold, measured >= threshold, detail)]


#: Every check by name, in report order.
CHECKS: dict[str, Check] = {
    "row_count": row_count,
    "row_change": row_change,
    "completeness": completeness,
    "uniqueness": uniqueness,
    "validity": validity,
    "referential": referential,
    "data_freshness": data_freshness,
    "sync_freshness": sync_freshness,
    "quarantine": quarantine,
    "reconciliation": reconciliation,
}
assert tuple(CHECKS) == CHECK_NAMES, "pipeline.dq.config.CHECK_NAMES lists every check"


def measured_entities(conn: sa.Connection) -> list[str]:
    """What a report measures: every Finale entity, in dependency order, then the app
    entities that have finished a run (a deployment without Supabase has none to judge)."""
    synced = [name for name in APP_ENTITIES if count_finished_runs(conn, name)]
    return [*ENTITIES, *synced]


def measure(
    conn: sa.Connection,
    config: DQConfig,
    *,
    report_id: str,
    entities: Iterable[str] | None = None,
    checks: Sequence[str] | None = None,
    now: datetime | None = None,
) -> list[CheckResult]:
    """Run the checks on the chosen entities.

    Args:
        conn: the warehouse.
        config: the thresholds.
        report_id: the report measuring (its own stored rows are not "the previous").
        entities: entity names (default: ``measured_entities``).
        checks: check names (default: all); unknown names raise ``ValueError``.
        now: the time ages are measured from (default: now).

    Returns:
        The results, entity by entity, check by check.
    """
    now = now or datetime.now(UTC)
    names = list(checks) if checks is not None else list(CHECKS)
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; choose from {', '.join(CHECKS)}")
    names_of = list(entities) if entities is not None else measured_entities(conn)
    specs = [entity_spec(e) for e in names_of]
    open_counts = open_rule_counts(conn, [spec.name for spec in specs])
    out: list[CheckResult] = []
    for spec in specs:
        rows = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(spec.table).where(_live(spec.table))
            ).scalar_one()
        )
        open_records, rules = open_counts.get(spec.name, (0, Counter()))
        shared = Measures(now, report_id, rows, open_records, rules)
        limits = config.thresholds(spec.name)
        for name in CHECKS:
            if name in names:
                out.extend(CHECKS[name](conn, spec, limits, shared))
    return out
