"""Work ahead of a consumer: read items in order and prepare several at once, in one pool.

The sync engine's one concurrency mechanism. Reading (HTTP pages) and preparing (parsing,
mapping, validating, rendering) overlap with the caller's loads, while loads and commits
stay in read order on the caller's thread.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")

#: How long closing waits for the reader to stop (a request in flight ends or times out on
#: its own; the pool's threads then end without handing anything over).
CLOSE_WAIT_SECONDS = 10.0


def worked_ahead(
    items: Iterator[T],
    work: Callable[[T], U],
    *,
    ahead: int,
    workers: int = 1,
    name: str = "ahead",
) -> Generator[U, None, None]:
    """Yield ``work(item)`` for each of ``items``, in order, working up to ``ahead`` ahead.

    One thread of a pool reads ``items`` in order; ``workers`` threads of the same pool run
    ``work`` on them, several at once. With one worker the reading thread works each item
    itself: a second thread could only take turns with it for the GIL, and the switching
    cost more than it overlapped (measured: 5% of a full sync). At most ``ahead`` items
    are read and not yet taken by the consumer, so memory stays bounded. An error while
    reading or working is raised to the consumer in its place in the order. Closing the
    generator early (the consumer stopped, e.g. on an error of its own) stops the reader,
    which then closes ``items`` in its own thread.
    """
    if ahead < 1:
        raise ValueError(f"ahead must be at least 1, not {ahead}")
    handoff: queue.Queue[Future[U] | None] = queue.Queue()
    room = threading.Semaphore(ahead)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=workers + 1, thread_name_prefix=name)

    def submit(item: T) -> Future[U]:
        if workers > 1:
            return pool.submit(work, item)
        done: Future[U] = Future()  # worked here, as the pool's thread would
        try:
            done.set_result(work(item))
        except BaseException as exc:
            done.set_exception(exc)
        return done

    def read() -> None:
        try:
            for item in items:
                while not room.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                handoff.put(submit(item))
                del item  # the work holds it; do not keep it past its turn
        except BaseException as exc:  # raised to the consumer, in order
            failed: Future[U] = Future()
            failed.set_exception(exc)
            handoff.put(failed)
        finally:
            handoff.put(None)
            close = getattr(items, "close", None)
            if close is not None:
                close()

    reader = pool.submit(read)
    try:
        while (future := handoff.get()) is not None:
            result = future.result()
            del future
            room.release()
            yield result
            del result  # do not hold a loaded item while waiting for the next
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(TimeoutError):
            reader.exception(timeout=CLOSE_WAIT_SECONDS)
