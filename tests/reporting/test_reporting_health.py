"""The sync-health view as data: relative times, short timestamps, markers, short errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import RAW_EMAIL

from reporting.health import ago, due, health_markdown, health_rows, stamp, summary_line

NOW = datetime(2026, 1, 1, 11, 12, 30, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        pytest.param(timedelta(seconds=3), "just now", id="seconds"),
        pytest.param(timedelta(seconds=45), "45 s ago", id="under-a-minute"),
        pytest.param(timedelta(minutes=12, seconds=26), "12 min ago", id="minutes"),
        pytest.param(timedelta(hours=3, minutes=5), "3 h 5 min ago", id="hours"),
        pytest.param(timedelta(days=2, hours=4), "2 d 4 h ago", id="days"),
    ],
)
def test_last_success_reads_as_a_relative_time(delta: timedelta, text: str) -> None:
    assert ago(NOW - delta, NOW) == text


def test_next_run_is_ahead_or_overdue_and_timestamps_have_no_microseconds() -> None:
    assert due(NOW + timedelta(minutes=9, seconds=59), NOW) == "in 9 min"
    assert due(NOW - timedelta(hours=1, minutes=5), NOW) == "overdue 1 h 5 min"
    assert due(None, NOW) == "-"
    assert stamp(NOW) == "2026-01-01 11:12 UTC"
    assert stamp(datetime(2026, 1, 1, 6, 0, tzinfo=UTC).astimezone()) == "2026-01-01 06:00 UTC"


def test_health_table_has_seven_short_columns_with_markers(
    statuses: list[dict[str, Any]],
) -> None:
    never = {
        "entity": "facilities", "status": "degraded", "health_score": 70, "last_sync": None,
        "metrics": {"records_synced": 0, "sync_duration_ms": None, "errors": 0,
                    "next_sync": None},
        "open_quarantine": 0, "last_error": None, "failed_checks": [],
    }  # fmt: skip
    checks = statuses[0] | {"failed_checks": ["quarantine", "validity[name must not be blank]"]}
    rows = health_rows(
        [checks, statuses[1], never], {"vendors": 1204}, now=NOW, touched={"vendors"}
    )
    markdown = health_markdown(rows, now=NOW, run_id="run-0001")

    assert markdown.startswith("### Sync health: 1 degraded · 1 failing · 1 never synced\n")
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert all(line.count(" | ") == 6 for line in table if "---" not in line), "seven columns"
    assert table[2] == (
        "| **vendors** | 🟡 degraded (75) | 12 min ago, 2026-01-01 11:00 UTC | 35 / 1,204 "
        "| 3 | in 47 min | checks failed: quarantine, validity[name must not be blank] |"
    )
    assert table[3].startswith("| stock | 🔴 failing (20) | never | 0 / 0 | 0 | - | failed for j")
    assert table[4] == "| facilities | ⚪ never synced | never | 0 / 0 | 0 | - | - |"
    assert RAW_EMAIL not in markdown and "abcdefgh12345678" not in markdown
    assert "```" not in markdown and "+00:00" not in markdown
    assert max(len(line) for line in table) < 200
    assert summary_line(rows) == "1 degraded · 1 failing · 1 never synced"


def test_a_long_multiline_error_shows_its_first_line_cut_short() -> None:
    status = {
        "entity": "stock", "status": "failing", "health_score": 20,
        "last_sync": "2026-01-01T11:00:04.123456+00:00",
        "metrics": {"records_synced": 0, "sync_duration_ms": 5, "errors": 1,
                    "next_sync": "2026-01-01T11:15:04.123456+00:00"},
        "open_quarantine": 0,
        "last_error": "RetryableError: 503 from https://u:hunter2@app.test/x " + "y" * 300
        + "\nTraceback (most recent call last):\n  File ...",
    }  # fmt: skip
    [row] = health_rows([status], now=NOW)
    assert len(row.problem) <= 95
    assert "hunter2" not in row.problem and "Traceback" not in row.problem
    assert row.last_success_at == "2026-01-01 11:00 UTC"
    assert row.next_run == "in 2 min"
