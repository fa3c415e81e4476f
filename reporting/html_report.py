"""The sync-health HTML report: one self-contained file with trends per entity.

Written with every data-quality report (``flows/data_quality.py``, ``invsync report``) to
``REPORTS_DIR`` as ``sync-health-<YYYYMMDD-HHMMSS>.html`` and linked from the Prefect link
artifact ``sync-health-report``. It opens with no network access: the charts are
Vega-Lite specifications built with Altair and drawn by the Vega JavaScript bundle that
``vl-convert-python`` ships, inlined in the file (about 0.9 MB).

Contents: the health table of ``reporting.health`` (the ``sync-health`` artifact's rows),
then for the last 7 and the last 30 days, per entity:

- records per run (records read by each run) and run duration (seconds),
- quarantine share (records a run quarantined over those it read),
- freshness (the ``sync_freshness`` check: hours since the last successful sync, as each
  sync and report measured it),
- check results (failed check results per entity and UTC day, from ``dq_results``: the
  checks each sync ran and the daily report's).

Nothing from a Finale record appears; error texts are redacted and masked
(``reporting.health.problem_text``).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import sqlalchemy as sa

from pipeline.entities import ENTITIES
from pipeline.status import all_statuses
from reporting.health import HealthRow, health_rows, stamp, summary_line
from warehouse import dq, runs
from warehouse.dq import StoredResult
from warehouse.runs import RunRecord

#: The windows the report shows, in days.
WINDOWS = (7, 30)
#: Width of a chart in the 2-column grid (px); two fit a 1280 px window.
CHART_WIDTH = 430
CHART_HEIGHT = 160


@dataclass
class HealthData:
    """What the report is drawn from.

    Attributes:
        now: when it was read.
        rows: the health table (``reporting.health.health_rows``).
        runs: every entity run started in the last 30 days.
        results: every ``dq_results`` row reported in the last 30 days.
    """

    now: datetime
    rows: list[HealthRow]
    runs: list[RunRecord]
    results: list[StoredResult]


def load_health_data(
    conn: sa.Connection, *, now: datetime | None = None, quarantine_ratio: float = 0.05
) -> HealthData:
    """Read the health table and the last 30 days of runs and check results.

    Args:
        conn: the warehouse.
        now: the report's time (default: now).
        quarantine_ratio: QUARANTINE_FAIL_RATIO, for the statuses.
    """
    now = now or datetime.now(UTC)
    start = now - timedelta(days=max(WINDOWS))
    statuses = all_statuses(conn, now, quarantine_ratio=quarantine_ratio)
    moved = runs.records_written_since(conn, now - timedelta(hours=24))
    return HealthData(
        now=now,
        rows=health_rows(statuses, moved, now=now),
        runs=runs.runs_started_between(conn, start, now + timedelta(seconds=1)),
        results=dq.results_between(conn, start, now + timedelta(seconds=1)),
    )


def run_frame(records: list[RunRecord]) -> pd.DataFrame:
    """One row per finished run: entity, started, records read, seconds, quarantine share."""
    rows = [
        {
            "entity": r.entity,
            "started": r.started_at.astimezone(UTC).replace(tzinfo=None),
            "status": r.status.value,
            "records": r.extracted,
            "duration_s": round(r.duration_ms / 1000, 2),
            "quarantine_share": round(r.quarantined / r.extracted, 4) if r.extracted else 0.0,
        }
        for r in records
        if r.started_at is not None and r.duration_ms is not None
    ]
    columns = ["entity", "started", "status", "records", "duration_s", "quarantine_share"]
    return pd.DataFrame(rows, columns=columns)


def freshness_frame(results: list[StoredResult]) -> pd.DataFrame:
    """The ``sync_freshness`` measurements: entity, when, hours since the last success."""
    rows = [
        {
            "entity": r.entity,
            "measured_at": r.reported_at.astimezone(UTC).replace(tzinfo=None),
            "hours": round(r.measured, 3),
            "threshold": r.threshold,
        }
        for r in results
        if r.check == "sync_freshness" and r.measured is not None and r.reported_at is not None
    ]
    return pd.DataFrame(rows, columns=["entity", "measured_at", "hours", "threshold"])


def checks_frame(results: list[StoredResult]) -> pd.DataFrame:
    """Check results per entity and UTC day: checks measured and checks failed."""
    counts: dict[tuple[str, str], list[int]] = {}
    for r in results:
        if r.reported_at is None:
            continue
        key = (r.entity, r.reported_at.astimezone(UTC).date().isoformat())
        total = counts.setdefault(key, [0, 0])
        total[0] += 1
        total[1] += 0 if r.passed else 1
    rows = [
        {"entity": entity, "day": day, "checks": n, "failed": failed}
        for (entity, day), (n, failed) in sorted(counts.items())
    ]
    return pd.DataFrame(rows, columns=["entity", "day", "checks", "failed"])


def _entities(data: HealthData) -> list[str]:
    seen = {r.entity for r in data.rows} | {r.entity for r in data.runs}
    ordered = [name for name in ENTITIES if name in seen]
    return ordered + sorted(seen - set(ordered))


def trend_chart(data: HealthData, days: int) -> alt.VConcatChart:
    """The charts of one window: records, duration, quarantine share, freshness, checks."""
    start = (data.now - timedelta(days=days)).astimezone(UTC).replace(tzinfo=None)
    end = data.now.astimezone(UTC).replace(tzinfo=None)
    color = alt.Color("entity:N", scale=alt.Scale(domain=_entities(data)), title="entity")
    x_domain = alt.Scale(domain=[start.isoformat(), end.isoformat()])
    frame = run_frame(data.runs)
    frame = frame[frame["started"] >= start]

    def runs_line(field: str, title: str, fmt: str) -> alt.Chart:
        return (
            alt.Chart(frame, title=title)
            .mark_line(point=True)
            .encode(
                x=alt.X("started:T", scale=x_domain, title=None),
                y=alt.Y(f"{field}:Q", title=None, axis=alt.Axis(format=fmt)),
                color=color,
                tooltip=["entity:N", "started:T", "status:N", f"{field}:Q"],
            )
            .properties(width=CHART_WIDTH, height=CHART_HEIGHT)
        )

    fresh = freshness_frame(data.results)
    fresh = fresh[fresh["measured_at"] >= start]
    freshness = (
        alt.Chart(fresh, title="Freshness: hours since the last successful sync")
        .mark_line(point=True)
        .encode(
            x=alt.X("measured_at:T", scale=x_domain, title=None),
            y=alt.Y("hours:Q", title=None),
            color=color,
            tooltip=["entity:N", "measured_at:T", "hours:Q", "threshold:Q"],
        )
        .properties(width=CHART_WIDTH, height=CHART_HEIGHT)
    )
    checks = checks_frame(data.results)
    checks = checks[checks["day"] >= start.date().isoformat()]
    check_chart = (
        alt.Chart(checks, title="Check results: failed checks per day (syncs and reports)")
        .mark_rect(stroke="white")
        .encode(
            x=alt.X("day:O", title=None),
            y=alt.Y("entity:N", title=None, sort=_entities(data)),
            color=alt.Color(
                "failed:Q",
                scale=alt.Scale(domainMin=0, range=["#2e9e44", "#f2c12e", "#d63a3a"]),
                title="failed checks",
            ),
            tooltip=["entity:N", "day:O", "checks:Q", "failed:Q"],
        )
        .properties(width=CHART_WIDTH, height=CHART_HEIGHT)
    )
    check_text = (
        alt.Chart(checks)
        .mark_text(color="white", fontWeight="bold")
        .encode(x="day:O", y=alt.Y("entity:N", sort=_entities(data)), text="failed:Q")
    )
    return alt.vconcat(
        alt.hconcat(
            runs_line("records", "Records per run (read)", ",d"),
            runs_line("duration_s", "Run duration (seconds)", ",.3~f"),
        ),
        alt.hconcat(
            runs_line("quarantine_share", "Quarantine share per run", ".1%"),
            freshness,
        ),
        alt.hconcat(check_chart + check_text),
    ).resolve_scale(color="independent")


@lru_cache(maxsize=1)
def vega_bundle() -> str:
    """The Vega, Vega-Lite and vega-embed JavaScript, bundled by ``vl-convert-python`` for
    the Vega-Lite version Altair writes (computed once per process, ~1.5 s)."""
    import vl_convert as vlc
    from altair.utils._importers import vl_version_for_vl_convert

    # The stub wants a snippet; without one the bundle only sets window.vegaEmbed & co.
    return str(vlc.javascript_bundle(vl_version=vl_version_for_vl_convert()))  # type: ignore[call-arg]


def _script_json(value: Any) -> str:
    # "</" would end the <script> element early.
    return json.dumps(value).replace("</", "<\\/")


_STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px;
       color: #1f2328; max-width: 1200px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; }
.meta { color: #59636e; margin-bottom: 16px; }
table.health { border-collapse: collapse; width: 100%; }
table.health th, table.health td { border: 1px solid #d0d7de; padding: 6px 8px;
  text-align: left; vertical-align: top; }
table.health th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pill { display: inline-block; border-radius: 10px; padding: 1px 9px; font-weight: 600;
        color: #fff; white-space: nowrap; }
.operational { background: #2e9e44; } .degraded { background: #c98a00; }
.failing { background: #d63a3a; } .never-synced { background: #8c959f; }
.when { color: #59636e; font-size: 12px; }
.problem { color: #a40e26; font-size: 13px; }
.notes { color: #59636e; font-size: 12px; margin-top: 24px; }
"""


def _health_table(rows: list[HealthRow]) -> str:
    head = (
        "<tr><th>entity</th><th>status</th><th>last success</th>"
        "<th>moved: last run / 24 h</th><th>open quarantine</th><th>next run</th>"
        "<th>last error</th></tr>"
    )
    body = []
    for row in rows:
        css = row.status.replace(" ", "-")
        score = f" {row.score}" if row.score is not None else ""
        when = f'<div class="when">{html.escape(row.last_success_at)}</div>'
        body.append(
            f'<tr data-entity="{html.escape(row.entity)}">'
            f"<td>{html.escape(row.entity)}</td>"
            f'<td><span class="pill {css}">{html.escape(row.status)}{score}</span></td>'
            f"<td>{html.escape(row.last_success_ago)}{when if row.last_success_at else ''}</td>"
            f'<td class="num">{row.moved_last_run:,} / {row.moved_24h:,}</td>'
            f'<td class="num">{row.open_quarantine:,}</td>'
            f"<td>{html.escape(row.next_run)}</td>"
            f'<td class="problem">{html.escape(row.problem)}</td></tr>'
        )
    return f'<table class="health">{head}{"".join(body)}</table>'


def render_report(data: HealthData) -> str:
    """The whole report as one HTML document (charts and their JavaScript inlined)."""
    charts = {days: trend_chart(data, days).to_dict() for days in WINDOWS}
    sections = "".join(
        f'<h2>Last {days} days</h2><div class="trend" id="trends-{days}"></div>' for days in WINDOWS
    )
    embeds = "\n".join(
        f"vegaEmbed('#trends-{days}', {_script_json(spec)}, "
        "{renderer: 'svg', actions: false}).catch(console.error);"
        for days, spec in charts.items()
    )
    generated = stamp(data.now)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sync health {generated}</title>
<style>{_STYLE}</style>
<script>{vega_bundle()}</script>
</head>
<body>
<h1>Sync health: {html.escape(summary_line(data.rows))}</h1>
<div class="meta">Generated {generated} from {len(data.runs)} runs and {len(data.results)}
check results of the last {max(WINDOWS)} days.</div>
{_health_table(data.rows)}
{sections}
<div class="notes">Moved: records inserted + updated. Records per run: records read from the
source. Quarantine share: records a run quarantined over those it read. Freshness: the
<code>sync_freshness</code> check, hours since the entity's last successful sync. Check
results: failed data-quality check results per entity and UTC day, as the syncs and the
reports measured them (see the README).</div>
<script>
{embeds}
</script>
</body>
</html>
"""


def write_report(document: str, folder: Path, now: datetime) -> Path:
    """Write the report as ``<folder>/sync-health-<YYYYMMDD-HHMMSS>.html`` (folder created);
    returns its absolute path."""
    folder = folder.expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sync-health-{now.astimezone(UTC):%Y%m%d-%H%M%S}.html"
    path.write_text(document, encoding="utf-8")
    return path
