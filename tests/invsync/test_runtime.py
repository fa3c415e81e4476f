"""The garbage-collector setting belongs to the entry points, never to library code."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from invsync.runtime import YOUNG_GENERATION_THRESHOLD, tune_garbage_collector


@pytest.fixture
def restored_thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_tuning_raises_only_the_young_generation_threshold(restored_thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)

    tune_garbage_collector()

    assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, 10, 10)
    assert gc.isenabled()


def test_importing_and_running_library_code_leaves_the_collector_alone() -> None:
    code = (
        "import gc; before = gc.get_threshold(), gc.isenabled()\n"
        "import pipeline.sync, pipeline.transform, warehouse.load, connectors.finale\n"
        "import flows.finale_sync\n"
        "assert (gc.get_threshold(), gc.isenabled()) == before, gc.get_threshold()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_cli_entry_point_tunes_the_collector() -> None:
    code = (
        "import gc, sys\n"
        "from invsync import cli\n"
        "cli.app = lambda: print(gc.get_threshold()[0])\n"
        "cli.main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(YOUNG_GENERATION_THRESHOLD)


def test_the_cli_entry_point_freezes_live_objects_as_it_exits_with_the_commands_code() -> None:
    # The command ends in SystemExit (Typer's way); the freeze must still happen, the exit
    # code must survive it, and nothing is frozen while the command runs.
    code = (
        "import atexit, gc, sys\n"
        "from invsync import cli\n"
        "def command():\n"
        "    print('during', gc.get_freeze_count())\n"
        "    sys.exit(3)\n"
        "cli.app = command\n"
        "atexit.register(lambda: print('at exit', gc.get_freeze_count() > 0))\n"
        "cli.main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["during 0", "at exit True"]
