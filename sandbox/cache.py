"""A byte-budgeted LRU cache of encoded response bodies.

Keys start with the collection name and its data version, so a write makes the old pages
unreachable; :meth:`PageCache.drop` also frees their memory at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class PageCache:
    """LRU of ``bytes`` values, bounded by their total size.

    Args:
        budget_bytes: total size kept; 0 disables caching.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[tuple[Hashable, ...], bytes] = OrderedDict()

    def get(self, key: tuple[Hashable, ...]) -> bytes | None:
        """The cached body for ``key``, or ``None`` (counted as a miss)."""
        body = self._items.get(key)
        if body is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return body

    def put(self, key: tuple[Hashable, ...], body: bytes) -> None:
        """Store ``body``, evicting least recently used entries beyond the budget."""
        if len(body) > self.budget:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= len(old)
        self._items[key] = body
        self.size += len(body)
        while self.size > self.budget:
            _, evicted = self._items.popitem(last=False)
            self.size -= len(evicted)

    def drop(self, collection: str) -> None:
        """Forget every page of ``collection`` (its data changed)."""
        for key in [k for k in self._items if k[0] == collection]:
            self.size -= len(self._items.pop(key))

    def stats(self) -> dict[str, int]:
        """Counters for ``/__sandbox__/stats``."""
        return {
            "entries": len(self._items),
            "bytes": self.size,
            "budget_bytes": self.budget,
            "hits": self.hits,
            "misses": self.misses,
        }
