"""Working ahead of the consumer (``pipeline.ahead.worked_ahead``): order, errors, bounds."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from pipeline.ahead import worked_ahead

WAIT = 10  # seconds: a bound on waiting for a condition, never an ordering device


def _pool_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(name) and t.is_alive()]


def test_results_arrive_in_read_order_even_when_later_work_finishes_first() -> None:
    first_may_finish = threading.Event()

    def work(item: int) -> int:
        if item == 0:
            # Item 0 ends only after item 1's work has run to its end.
            assert first_may_finish.wait(WAIT)
        if item == 1:
            first_may_finish.set()
        return item * 10

    got = list(worked_ahead(iter(range(20)), work, ahead=3, workers=3, name="order"))

    assert got == [i * 10 for i in range(20)]


def test_an_error_while_reading_is_raised_after_the_good_items() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("page 3 is corrupt")

    got: list[int] = []
    with pytest.raises(ValueError, match="page 3 is corrupt"):
        for item in worked_ahead(items(), lambda i: i, ahead=1, name="read-error"):
            got.append(item)
    assert got == [1, 2]


def test_an_error_in_the_work_is_raised_in_its_place() -> None:
    def work(item: int) -> int:
        if item == 3:
            raise RuntimeError("chunk 3 cannot be prepared")
        return item

    got: list[int] = []
    with pytest.raises(RuntimeError, match="chunk 3"):
        for item in worked_ahead(iter(range(10)), work, ahead=2, workers=2, name="work-error"):
            got.append(item)
    assert got == [0, 1, 2]


def test_stopping_early_stops_the_reader_and_closes_its_source() -> None:
    closed = threading.Event()
    produced: list[int] = []

    def items() -> Iterator[int]:
        try:
            for i in range(1_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    reader = worked_ahead(items(), lambda i: i, ahead=2, name="stop")
    assert next(reader) == 0
    reader.close()

    assert closed.wait(WAIT)
    # Bounded: never more than `ahead` items waiting, plus the one taken and one in hand.
    assert len(produced) <= 4


def test_the_next_item_is_read_and_worked_while_the_consumer_holds_the_current_one() -> None:
    second_done = threading.Event()

    def work(item: int) -> int:
        if item == 1:
            second_done.set()
        return item

    reader = worked_ahead(iter(range(2)), work, ahead=1, name="overlap")
    assert next(reader) == 0
    # Still holding item 0: item 1 has already been read and worked on.
    assert second_done.wait(WAIT)
    assert list(reader) == [1]


def test_several_items_are_worked_at_once() -> None:
    together = threading.Barrier(3, timeout=WAIT)

    def work(item: int) -> int:
        if item < 3:
            together.wait()  # passes only when three works run at the same time
        return item

    got = list(worked_ahead(iter(range(6)), work, ahead=3, workers=3, name="parallel"))

    assert got == list(range(6))
    assert not together.broken


@pytest.mark.parametrize("workers", [1, 2])
def test_one_worker_is_the_reading_thread_itself_several_are_others(workers: int) -> None:
    readers: set[str] = set()
    workers_seen: set[str] = set()

    def items() -> Iterator[int]:
        for i in range(6):
            readers.add(threading.current_thread().name)
            yield i

    def work(item: int) -> int:
        workers_seen.add(threading.current_thread().name)
        return item

    got = list(worked_ahead(items(), work, ahead=2, workers=workers, name=f"threads{workers}"))

    assert got == list(range(6))
    assert len(readers) == 1
    assert (workers_seen == readers) is (workers == 1)


def test_the_pool_threads_end_with_the_iteration() -> None:
    assert list(worked_ahead(iter(range(5)), lambda i: i, ahead=2, name="ends")) == list(range(5))
    for thread in _pool_threads("ends"):
        thread.join(WAIT)
    assert not _pool_threads("ends")


def test_ahead_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ahead must be at least 1"):
        next(worked_ahead(iter([1]), lambda i: i, ahead=0))
