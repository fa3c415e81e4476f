"""``python -m events deliver``: one delivery run without Prefect (cron, systemd, tests).

The same engine as the ``deliver-events`` flow, with settings and secrets loaded here (an
edge, like the CLI). Prints the counts as JSON; exit 0, or 1 when a delivery died or a
subscriber could not be served, 2 for a bad setting or subscribers file.
"""

from __future__ import annotations

import json
import sys

from events.delivery import deliver
from events.subscribers import (
    SubscriberConfigError,
    process_environment,
    subscribers_from_settings,
)
from invsync.settings import ConfigError, load_settings
from warehouse.db import create_warehouse_engine
from warehouse.migrate import upgrade


def main(argv: list[str]) -> int:
    """Run ``deliver`` once; return the exit code."""
    if argv != ["deliver"]:
        print("usage: python -m events deliver", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        subscribers = subscribers_from_settings(
            settings.event_subscribers_file, process_environment()
        )
    except (ConfigError, SubscriberConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    upgrade(settings.warehouse_url, schema=settings.warehouse_schema)
    engine = create_warehouse_engine(settings.warehouse_url, schema=settings.warehouse_schema)
    try:
        counts = deliver(engine, subscribers)
    finally:
        engine.dispose()
    print(json.dumps(counts.to_json(), indent=2))
    return 1 if counts.dead or counts.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
