"""Adapter: deliver alerts through a Prefect notification block configured in the UI.

This is the one module of ``notifications`` that imports Prefect, so the rest of the
package stays usable (and testable) without a Prefect API. A block (``SlackWebhook``,
``MicrosoftTeamsWebhook``, ``SendgridEmail``, ``CustomWebhookNotificationBlock``, any
``AppriseNotificationBlock``) is loaded by its slug, ``<block-type-slug>/<block-name>``, on
first use, and sent ``notify(body, subject)``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from connectors.redact import is_secret_name, redact_secrets
from notifications.channels import DeliveryError
from notifications.message import Message

if TYPE_CHECKING:
    from prefect.blocks.abstract import NotificationBlock


def _secret_values(block: Any) -> list[str]:
    """Values in the block that must not appear in an error: secret-typed fields, fields
    whose name says they hold a credential (``connectors.redact.is_secret_name``), and
    every URL (a webhook URL is a credential in itself)."""
    values: list[str] = []
    for name in type(block).model_fields:
        value = getattr(block, name, None)
        secret = hasattr(value, "get_secret_value")
        if secret:
            value = value.get_secret_value()  # type: ignore[union-attr]
        if isinstance(value, dict):
            # SecretDict, headers, cookies: mask every string value.
            values.extend(str(v) for v in value.values() if v)
        elif isinstance(value, str) and (secret or is_secret_name(name) or "url" in name.lower()):
            values.append(value)
    return [v for v in values if v]


class PrefectBlockChannel:
    """Sends alerts through a Prefect notification block loaded by name.

    Args:
        block_name: the block's slug, ``<block-type-slug>/<block-name>`` (e.g.
            ``slack-webhook/ops-alerts``), as shown in the Prefect UI's Blocks page.
        block: an already-loaded block (then ``block_name`` is only a label).
    """

    def __init__(self, block_name: str, *, block: NotificationBlock | None = None) -> None:
        if block is None and "/" not in block_name:
            raise ValueError(
                f"block name {block_name!r} must be '<block-type-slug>/<block-name>', "
                "e.g. 'slack-webhook/ops-alerts'"
            )
        self.block_name = block_name
        self.name = f"prefect-block:{block_name}"
        self._block = block

    def secrets(self) -> list[str]:
        """The loaded block's secret values and URLs (none before the first send)."""
        return _secret_values(self._block) if self._block is not None else []

    def _load(self) -> NotificationBlock:
        if self._block is None:
            from prefect.blocks.core import Block

            # Loaded lazily: building the channel list must not need the Prefect API.
            self._block = Block.load(self.block_name)  # type: ignore[assignment]
        assert self._block is not None
        return self._block

    def send(self, message: Message) -> None:
        """Call the block's ``notify(body, subject)`` with the plain-text message.

        Raises:
            DeliveryError: if the block cannot be loaded or reports a failure.
        """
        try:
            block = self._load()
        except Exception as exc:  # any load failure means "not delivered"
            raise DeliveryError(self.name, f"cannot load block: {type(exc).__name__}") from None
        try:
            # Apprise-based blocks swallow failures unless asked to raise.
            with block.raise_on_failure():
                result: Any = block.notify(message.text, message.subject)
                if inspect.iscoroutine(result):
                    # notify dispatches to its async twin inside async flows.
                    from prefect.utilities.asyncutils import run_coro_as_sync

                    run_coro_as_sync(result)
        except Exception as exc:  # report, never raise past the channel
            reason = redact_secrets(f"{type(exc).__name__}: {exc}", _secret_values(block))
            raise DeliveryError(self.name, reason) from None
