"""Sync health at a glance: one row per entity, as the ``sync-health`` artifact shows it.

Pure builders (no Prefect, no database): ``health_rows`` turns the status JSON rows of
``pipeline.status.all_statuses`` and the records each entity moved in the last 24 hours
into short display rows; ``health_markdown`` lays them out as one Markdown table with few,
short columns (they fit a 1280 px window in the Prefect UI), and ``reporting.html_report``
shows the same rows in the HTML report.

- status: a coloured marker (🟢 operational, 🟡 degraded, 🔴 failing, ⚪ never synced)
  and the 0-100 health score;
- last success: relative ("12 min ago") and as a UTC timestamp to the minute;
- moved: records written (inserted + updated) by the latest run, and by every run started
  in the last 24 hours;
- open quarantine: distinct records still in quarantine;
- next run: when the entity is next expected to have synced (last success + its
  schedule's interval), relative, or "overdue" by how long;
- problem: the latest run's error, first line only, redacted, masked and cut to
  ``ERROR_CHARS`` characters, else the data-quality checks that failed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reporting.tables import clean_text

#: Marker and label of each status, in the order a summary lists them.
STATUS_MARKERS: dict[str, str] = {
    "operational": "🟢",
    "degraded": "🟡",
    "failing": "🔴",
    "never synced": "⚪",
}
#: Longest error text shown inline (the full text is in ``sync_runs`` and the run's logs).
ERROR_CHARS = 90


@dataclass(frozen=True)
class HealthRow:
    """What an operator reads about one entity, every value already formatted.

    Attributes:
        entity: the entity's name.
        status: ``operational``, ``degraded``, ``failing`` or ``never synced``.
        score: the 0-100 health score (None when never synced).
        last_success_ago: ``"12 min ago"``, or ``"never"``.
        last_success_at: ``"2026-12-05 13:05 UTC"``, or ``""``.
        moved_last_run: records the latest run wrote.
        moved_24h: records written by the runs started in the last 24 hours.
        open_quarantine: distinct records in quarantine now.
        next_run: ``"in 9 min"``, ``"overdue 1 h 5 min"``, or ``"-"``.
        problem: the short, redacted last error or failed checks, or ``""``.
        in_this_run: whether the run that publishes the row synced the entity.
    """

    entity: str
    status: str
    score: int | None
    last_success_ago: str
    last_success_at: str
    moved_last_run: int
    moved_24h: int
    open_quarantine: int
    next_run: str
    problem: str
    in_this_run: bool = False

    @property
    def marker(self) -> str:
        """The status's coloured marker (an emoji that renders in Prefect's Markdown)."""
        return STATUS_MARKERS.get(self.status, "⚪")


def parse_time(value: str | datetime | None) -> datetime | None:
    """An aware datetime from an ISO string or a datetime (naive means UTC)."""
    if value is None or value == "":
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def stamp(when: datetime | None) -> str:
    """``2026-12-05 13:05 UTC``: to the minute, in UTC, no microseconds (``""`` for None)."""
    if when is None:
        return ""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def span(seconds: float) -> str:
    """A duration in words an operator reads at once: ``45 s``, ``12 min``, ``3 h 5 min``,
    ``2 d 4 h``."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def ago(when: datetime | None, now: datetime) -> str:
    """``"12 min ago"`` (``"just now"`` under 10 s; ``"never"`` for None)."""
    if when is None:
        return "never"
    seconds = (now - when).total_seconds()
    if seconds < 10:
        return "just now"
    return f"{span(seconds)} ago"


def due(when: datetime | None, now: datetime) -> str:
    """``"in 9 min"`` for a time ahead, ``"overdue 1 h 5 min"`` for one past, ``"-"``."""
    if when is None:
        return "-"
    seconds = (when - now).total_seconds()
    if seconds >= 0:
        return f"in {span(seconds)}"
    return f"overdue {span(seconds)}"


def problem_text(status: Mapping[str, Any]) -> str:
    """The latest error's first line, redacted, masked and short; else the failed checks."""
    error = status.get("last_error")
    checks = status.get("failed_checks") or []
    if error:
        text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    elif checks:
        text = "checks failed: " + ", ".join(checks)
    else:
        return ""
    # Redacted and masked before the cut, so a cut never exposes half a secret.
    shown = clean_text(text, limit=10_000) or ""
    return shown if len(shown) <= ERROR_CHARS else shown[: ERROR_CHARS - 1].rstrip() + "…"


def health_rows(
    status_rows: Iterable[Mapping[str, Any]],
    moved_24h: Mapping[str, int] | None = None,
    *,
    now: datetime,
    touched: Collection[str] = (),
) -> list[HealthRow]:
    """The display rows of the status JSON rows (``pipeline.status.entity_status``).

    Args:
        status_rows: one status JSON row per entity.
        moved_24h: entity -> records written by its runs of the last 24 hours
            (``warehouse.runs.records_written_since``); missing entities moved none.
        now: the time the relative times are counted from.
        touched: the entities the publishing run synced.
    """
    moved_24h = moved_24h or {}
    rows = []
    for status in status_rows:
        metrics = status.get("metrics") or {}
        last = parse_time(status.get("last_sync"))
        never = (
            last is None
            and metrics.get("sync_duration_ms") is None
            and not status.get("last_error")
            and not metrics.get("errors")
        )
        entity = str(status.get("entity"))
        rows.append(
            HealthRow(
                entity=entity,
                status="never synced" if never else str(status.get("status")),
                score=None if never else status.get("health_score"),
                last_success_ago=ago(last, now),
                last_success_at=stamp(last),
                moved_last_run=int(metrics.get("records_synced") or 0),
                moved_24h=int(moved_24h.get(entity, 0)),
                open_quarantine=int(status.get("open_quarantine") or 0),
                next_run=due(parse_time(metrics.get("next_sync")), now),
                problem=problem_text(status),
                in_this_run=entity in touched,
            )
        )
    return rows


def summary_line(rows: Iterable[HealthRow]) -> str:
    """``2 operational · 1 degraded · 1 failing``: the statuses present, in a fixed order."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    parts = [f"{counts[s]} {s}" for s in STATUS_MARKERS if counts.get(s)]
    return " · ".join(parts) if parts else "no entities"


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A pipe would end the cell; a newline would end the row.
    return text.replace("|", "\\|").replace("\n", " ") or " "


def health_markdown(rows: list[HealthRow], *, now: datetime, run_id: str | None = None) -> str:
    """The ``sync-health`` artifact: a headline and one table, no JSON.

    Seven short columns; the entities this run synced are in bold.

    Args:
        rows: ``health_rows(...)``.
        now: when the health was measured (shown in the headline).
        run_id: the sync run that publishes it, if any.
    """
    lines = [
        f"### Sync health: {summary_line(rows)}",
        "",
        f"As of {stamp(now)}"
        + (f", after sync run `{run_id}`" if run_id else "")
        + ". Entities this run synced are in **bold**.",
        "",
        "| entity | status | last success | moved (last run / 24 h) | open quarantine "
        "| next run | last error |",
        "|---|---|---|---:|---:|---|---|",
    ]
    for row in rows:
        name = f"**{row.entity}**" if row.in_this_run else row.entity
        score = f" ({row.score})" if row.score is not None else ""
        last = (
            f"{row.last_success_ago}, {row.last_success_at}"
            if row.last_success_at
            else row.last_success_ago
        )
        cells = (
            name,
            f"{row.marker} {row.status}{score}",
            last,
            f"{row.moved_last_run:,} / {row.moved_24h:,}",
            f"{row.open_quarantine:,}",
            row.next_run,
            row.problem or "-",
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += [
        "",
        "Status (score 0-100): 🟢 operational, 🟡 degraded (a run did not reconcile, quarantined "
        "too much, a data-quality check failed, or the entity is overdue), 🔴 failing (the "
        "latest run failed). Moved: records inserted + updated. Details: `invsync status`, "
        "the `sync-counts` artifacts and the HTML report (`invsync report`).",
        "",
    ]
    return "\n".join(lines)
