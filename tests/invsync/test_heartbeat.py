"""Runs from the shell send Prefect heartbeats only when configured to.

Prefect joins a flow run's heartbeat thread when the run ends, which cost every run up to a
second; the flow engine decides from ``flows.heartbeat_frequency`` as the run sees it, which
is what these flows return.
"""

from __future__ import annotations

import pytest
from prefect import flow
from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    get_current_settings,
    temporary_settings,
)

from invsync.cli import _heartbeat_only_if_configured


@flow
def heartbeat_seen_by_run() -> int | None:
    return get_current_settings().flows.heartbeat_frequency


@pytest.mark.usefixtures("prefect_harness")
def test_a_shell_run_has_no_heartbeat_by_default() -> None:
    assert get_current_settings().flows.heartbeat_frequency is not None  # Prefect's default

    with _heartbeat_only_if_configured():
        assert heartbeat_seen_by_run() is None

    assert heartbeat_seen_by_run() == get_current_settings().flows.heartbeat_frequency


@pytest.mark.usefixtures("prefect_harness")
def test_a_configured_heartbeat_is_kept_for_shell_runs() -> None:
    with (
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 45}),
        _heartbeat_only_if_configured(),
    ):
        assert heartbeat_seen_by_run() == 45
