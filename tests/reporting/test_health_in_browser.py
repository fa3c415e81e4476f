"""Sync health as a person sees it: the artifacts and the HTML report, drawn by Chromium.

One full ``finale-sync`` against the sandbox (over loopback), then ``invsync report --open``
in-process (the ``data-quality-report`` flow), on SQLite and on PostgreSQL, on the session's
temporary Prefect server. Then headless Chromium (Debian's ``chromium``) draws

- the run's artifacts as the UI shows them: each card's key and description, and the
  ``sync-health`` Markdown converted to HTML, in a 960 px content column (what the Prefect
  UI leaves of a 1280 px window beside its sidebar);
- the HTML report, opened from its file with no network (Chromium's proxy points nowhere);

and the tests read the DOM Chromium built: statuses, figures from the warehouse, the
charts' SVG marks and their points, and whether any table overflows its column. The
screenshots are kept: under the test's ``tmp_path`` and copied to ``SCREENSHOT_DIR``
(default ``test-output/screenshots/`` in the repository; ignored by git).

Without a ``chromium`` on PATH the browser part is skipped, naming why; with ``CI=true`` it
fails instead (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from markdown_it import MarkdownIt
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.client.schemas.objects import Artifact

from flows.finale_sync import finale_sync
from invsync.cli import app
from pipeline.entities import ENTITIES
from pipeline.status import all_statuses
from sandbox.server import SandboxConfig, SandboxHandle, start_in_thread
from schemas import tables
from warehouse.db import create_warehouse_engine

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR") or REPO / "test-output" / "screenshots")
ANCHOR = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT00:00:00")
SECRET = "sandbox-secret"

#: Appended to a page before Chromium draws it: records whether anything is wider than its
#: column, once the charts are drawn (vegaEmbed is asynchronous).
LAYOUT_PROBE = """
<script>
setTimeout(() => {
  const page = document.documentElement;
  const tables = [...document.querySelectorAll('table')].map(t => ({
    right: Math.round(t.getBoundingClientRect().right),
    limit: Math.round(t.parentElement.getBoundingClientRect().right),
  }));
  const charts = [...document.querySelectorAll('svg.marks')].map(
    s => Math.round(s.getBoundingClientRect().right));
  document.body.setAttribute('data-layout', JSON.stringify(
    {pageWidth: page.scrollWidth, viewport: window.innerWidth, tables, charts}));
}, 1500);
</script>
"""

ARTIFACT_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; font: 14px/1.5 system-ui, sans-serif; color: #1f2328; }}
nav {{ position: fixed; left: 0; top: 0; bottom: 0; width: 256px; background: #f3f4f6; }}
main {{ margin-left: 288px; width: 960px; }}
.card {{ border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 12px; margin: 12px 0; }}
.key {{ font-weight: 600; }} .description {{ color: #59636e; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #d0d7de; padding: 4px 8px; }}
</style></head><body><nav>Prefect</nav><main>
<div class="cards">{cards}</div>
<article class="artifact" data-key="sync-health">{health}</article>
</main>{probe}</body></html>"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "chromium is not installed (Debian: apt-get install chromium; .ci/run does it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def draw(page: Path, shot: Path, height: int) -> str:
    """Draw ``page`` in headless Chromium at 1280 px wide: screenshot to ``shot``, and
    return the DOM as Chromium built it (scripts run, charts drawn)."""
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--proxy-server=127.0.0.1:9",  # no network: anything fetched would fail
        f"--window-size=1280,{height}",
        "--virtual-time-budget=15000",
        f"--screenshot={shot}",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.is_file()
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOT_DIR / shot.name)
    return done.stdout


def layout(dom: str) -> dict[str, Any]:
    found = re.search(r"data-layout=\"([^\"]+)\"", dom)
    assert found, "the layout probe ran"
    return dict(json.loads(found.group(1).replace("&quot;", '"')))


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    config = SandboxConfig(port=0, products=120, rate_limit_per_minute=0, anchor=ANCHOR)
    with start_in_thread(config) as handle:
        yield handle


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: SandboxHandle, warehouse_url: str
) -> Path:
    monkeypatch.chdir(tmp_path)
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("FINALE_SHARED_RATE_LIMIT", "")
    monkeypatch.setenv("QUARANTINE_FAIL_RATIO", "0.5")  # the dirty supplier is 1 in 8
    monkeypatch.setenv("ANALYTICS_URL", str(tmp_path / "analytics"))
    monkeypatch.setenv("REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.delenv("DQ_CONFIG", raising=False)
    # ``--open`` hands the file to the browser BROWSER names: here a script noting it.
    opener = tmp_path / "browser.sh"
    opener.write_text(f'#!/bin/sh\necho "$1" > {tmp_path / "opened.txt"}\n')
    opener.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(opener))
    import webbrowser

    monkeypatch.setattr(webbrowser, "_tryorder", None)  # read BROWSER afresh
    return tmp_path


def _artifacts(flow_run_id: str) -> dict[str, Artifact]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {str(a.key): a for a in found}


def _expected(engine: sa.Engine) -> tuple[dict[str, dict[str, Any]], dict[str, int], int]:
    """Statuses, records written per entity and runs, read from the warehouse here."""
    runs = tables.sync_runs
    with engine.connect() as conn:
        statuses = {s["entity"]: s for s in all_statuses(conn, quarantine_ratio=0.5)}
        written = dict(
            conn.execute(
                sa.select(runs.c.entity, runs.c.inserted + runs.c.updated).where(
                    runs.c.mode == "full"
                )
            ).all()
        )
        extracted = dict(conn.execute(sa.select(runs.c.entity, runs.c.extracted)).all())
    return statuses, written, extracted


def test_artifacts_and_html_report_read_at_a_glance_in_chromium(
    env: Path, warehouse_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    backend = "sqlite" if warehouse_url.startswith("sqlite") else "postgres"
    summary = finale_sync(mode="full")
    assert summary.run_id is not None
    sync_artifacts = _artifacts(summary.run_id)

    capfd.readouterr()
    code = app(["report", "--open"], standalone_mode=False, prog_name="invsync")
    out, err = capfd.readouterr()
    assert not code, err[-3000:]
    report = Path(out.strip().splitlines()[-1])
    assert report.is_file() and report.parent == env / "reports", "the last line is the path"
    assert report.name.startswith("sync-health-") and report.suffix == ".html"
    assert (env / "opened.txt").read_text().strip() == report.as_uri()
    report_run = re.search(r"data-quality report ([0-9a-f-]{36}):", out)
    assert report_run, out
    link = _artifacts(report_run.group(1))["sync-health-report"]
    assert link.type == "markdown" and report.as_uri() in str(link.data)
    assert (link.description or "").startswith("HTML report of sync health with 7- and 30-day")

    engine = create_warehouse_engine(warehouse_url)
    try:
        statuses, written, extracted = _expected(engine)
    finally:
        engine.dispose()
    document = report.read_text()
    assert SECRET not in document and "http://" not in document.split("<script>")[0]
    assert "<script src" not in document and "<link" not in document, "nothing to fetch"

    _check_artifacts(sync_artifacts, env, backend, statuses, written)
    _check_report(document, env, backend, statuses, written, extracted)


def _check_artifacts(
    artifacts: dict[str, Artifact],
    env: Path,
    backend: str,
    statuses: dict[str, dict[str, Any]],
    written: dict[str, int],
) -> None:
    """The sync's cards say what they hold; the health table fits and shows the figures."""
    for key, artifact in artifacts.items():
        assert artifact.description, f"{key} has a description"
        assert not artifact.description.startswith("Sync run"), key
    health = artifacts["sync-health"]
    markdown = str(health.data)
    assert "```" not in markdown and "{" not in markdown, "no JSON"
    cards = "".join(
        f'<div class="card"><div class="key">{key}</div>'
        f'<div class="description">{a.description}</div></div>'
        for key, a in sorted(artifacts.items())
    )
    rendered = MarkdownIt("commonmark").enable("table").render(markdown)
    page = env / "artifacts.html"
    page.write_text(ARTIFACT_PAGE.format(cards=cards, health=rendered, probe=LAYOUT_PROBE))
    dom = draw(page, env / f"sync-health-artifact-{backend}.png", 1300)

    geometry = layout(dom)
    assert geometry["pageWidth"] <= 1280, "nothing wider than the window"
    [table] = geometry["tables"]
    assert table["right"] <= table["limit"], "every column within the content column"
    rows = re.findall(r"<tr>\s*<td>(.*?)</td>\s*</tr>", dom, flags=re.S)
    cells = {
        re.sub(r"<[^>]+>", "", row.split("</td>")[0]): [
            re.sub(r"<[^>]+>", "", c).strip() for c in re.split(r"</td>\s*<td[^>]*>", row)
        ]
        for row in rows
    }
    assert set(cells) == set(ENTITIES)
    marker = {"operational": "🟢", "degraded": "🟡", "failing": "🔴"}
    for entity, status in statuses.items():
        row = cells[entity]
        # At sync time the report's checks had not run: the sync's own view of health.
        assert row[1].split(" ")[0] in marker.values(), row
        assert re.fullmatch(r"(just now|\d+ s ago), \d{4}-\d\d-\d\d \d\d:\d\d UTC", row[2]), row
        assert row[3] == f"{written[entity]:,} / {written[entity]:,}", row
        assert row[4] == f"{status['open_quarantine']:,}"
        assert row[5].startswith("in "), row
    assert cells["vendors"][1] == f"🟡 degraded ({statuses['vendors']['health_score']})"
    assert cells["vendors"][6].startswith("checks failed: quarantine")
    assert "Sync health: 4 operational · 1 degraded" in dom


def _check_report(
    document: str,
    env: Path,
    backend: str,
    statuses: dict[str, dict[str, Any]],
    written: dict[str, int],
    extracted: dict[str, int],
) -> None:
    """The report shows each entity's status and figures, and draws the trends."""
    page = env / "report.html"
    head, tail = document.rsplit("</body>", 1)  # the last one: the bundle has its own
    page.write_text(head + LAYOUT_PROBE + "</body>" + tail)
    dom = draw(page, env / f"sync-health-report-{backend}.png", 2000)

    geometry = layout(dom)
    assert geometry["pageWidth"] <= 1280, geometry
    assert len(geometry["charts"]) == 2 and max(geometry["charts"]) <= 1280
    for entity, status in statuses.items():
        row = re.search(rf'<tr data-entity="{entity}">(.*?)</tr>', dom, flags=re.S)
        assert row, entity
        text = re.sub(r"<[^>]+>", "|", row.group(1))
        assert f"{status['status']} {status['health_score']}" in text, (entity, text)
        assert f"{written[entity]:,} / {written[entity]:,}" in text
    failing_checks = {e for e, s in statuses.items() if s["failed_checks"]}
    assert failing_checks == {"vendors", "products", "purchase_orders"}
    summary = re.search(r"<h1>Sync health: (.*?)</h1>", dom)
    assert summary and summary.group(1) == "2 operational · 3 degraded"

    # Vega drew two SVG visualisations (7 and 30 days), each with its five panels.
    assert dom.count('aria-roledescription="visualization"') == 2
    for title in (
        "Records per run (read)",
        "Run duration (seconds)",
        "Quarantine share per run",
        "Freshness: hours since the last successful sync",
        "Check results: failed checks per day (syncs and reports)",
    ):
        assert dom.count(f">{title}</text>") == 2, title
    # Each run drawn in both windows, labelled with its figures (point and line marks).
    for entity, count in extracted.items():
        label = f"records: {count:,}; entity: {entity}; status: succeeded"
        assert dom.count(label) >= 2, label
    assert 'aria-roledescription="rect mark container"' in dom
