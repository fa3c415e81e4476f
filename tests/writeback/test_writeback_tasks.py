"""The push task retries what a retry can fix (the app database), never a Finale refusal."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from prefect.states import Failed

from connectors.finale import AuthError, FatalError
from tasks.writeback_tasks import _worth_retrying


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        pytest.param(AuthError("Finale rejected the credentials"), False, id="auth"),
        pytest.param(FatalError("Finale refused the write"), False, id="refusal"),
        pytest.param(
            sa.exc.OperationalError("UPDATE ...", {}, Exception("server closed the connection")),
            True,
            id="database-hiccup",
        ),
    ],
)
def test_only_errors_a_retry_can_fix_are_retried(error: Exception, retried: bool) -> None:
    state = Failed(data=error)

    assert _worth_retrying(None, None, state) is retried  # type: ignore[arg-type]
