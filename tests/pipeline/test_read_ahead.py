"""The sync engine's read-ahead thread and garbage-collector pauses."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from connectors.finale import FinaleClient
from invsync.settings import FinaleSettings
from pipeline.entities import ENTITIES
from pipeline.sync import EntitySync, SyncOptions, _paused_gc, _read_ahead
from warehouse.migrate import upgrade


def test_items_arrive_in_order_and_the_thread_ends() -> None:
    reader = _read_ahead(iter(range(50)), 2, name="test-read")
    assert list(reader) == list(range(50))
    assert not [t for t in threading.enumerate() if t.name == "test-read"]


def test_an_error_while_reading_is_raised_to_the_consumer_after_the_good_items() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("page 3 is corrupt")

    got: list[int] = []
    with pytest.raises(ValueError, match="page 3 is corrupt"):
        for item in _read_ahead(items(), 1, name="test-read"):
            got.append(item)
    assert got == [1, 2]


def test_stopping_early_stops_the_producer_and_closes_its_source() -> None:
    closed = threading.Event()
    produced: list[int] = []

    def items() -> Iterator[int]:
        try:
            for i in range(1_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    reader = _read_ahead(items(), 2, name="test-read")
    assert next(reader) == 0
    reader.close()
    assert closed.wait(5)
    # Bounded: the producer never ran more than the queue depth (+ the one in hand) ahead.
    assert len(produced) <= 4


def test_the_next_item_is_read_while_the_consumer_holds_the_current_one() -> None:
    second_read = threading.Event()

    def items() -> Iterator[int]:
        yield 0
        second_read.set()
        yield 1

    reader = _read_ahead(items(), 1, name="test-read")
    assert next(reader) == 0
    # Still working on item 0: the producer has already moved on to item 1.
    assert second_read.wait(5)
    assert list(reader) == [1]


def test_gc_pauses_nest_and_restore_the_previous_state() -> None:
    assert gc.isenabled()
    with _paused_gc():
        assert not gc.isenabled()
        with _paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with _paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_run_pauses_the_collector_until_it_ends_even_when_it_cannot_start(
    tmp_path: Path,
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/warehouse.db")
    upgrade(str(engine.url))
    broken = sa.create_engine(f"sqlite:///{tmp_path}/missing/dir/warehouse.db")
    settings = FinaleSettings(
        base_url="http://127.0.0.1:9", account="acme", api_key="k", api_secret=SecretStr("s")
    )
    spec, options = ENTITIES["facilities"], SyncOptions()
    try:
        with FinaleClient(settings) as client:
            with EntitySync(spec, client, engine, run_id="r", options=options):
                assert not gc.isenabled()
            assert gc.isenabled()
            with (
                pytest.raises(sa.exc.OperationalError),
                EntitySync(spec, client, broken, run_id="r", options=options),
            ):
                pass
            assert gc.isenabled()
    finally:
        engine.dispose()
        broken.dispose()
