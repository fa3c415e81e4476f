"""``python -m sandbox [--port 8700] [--products 1000] ...``: run the Finale sandbox.

The project CLI (``invsync sandbox``) offers the same options; this entry point needs nothing
but the sandbox package, which the benchmarks use to run the server in its own process.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys

from sandbox.server import SandboxConfig, serve


def main(argv: list[str] | None = None) -> int:
    """Parse options named after :class:`SandboxConfig` fields and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    for field in dataclasses.fields(SandboxConfig):
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=type(field.default),
            default=field.default,
            help=f"(default: {field.default!r})",
        )
    args = parser.parse_args(argv)
    try:
        config = SandboxConfig(**vars(args))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
