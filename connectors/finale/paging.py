"""``limit``/``offset`` paging for full reads of a collection.

``offset`` is not documented by Finale, so the pager guards against a server that ignores it:
such a server answers every page with the same first record, and reading on would loop
forever or duplicate data. The pager stops with a FatalError instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from connectors.finale.columnar import first_row, payload_length
from connectors.finale.errors import FatalError

FetchPage = Callable[[int, int], Mapping[str, Any]]
"""``fetch(limit, offset) -> column-major body``."""


@dataclass(frozen=True)
class OffsetPaging:
    """Reads pages of ``page_size`` records until a short (or empty) page.

    Attributes:
        page_size: records per request; must not exceed the server's per-response cap, or
            a capped page would look short and end the read early.
        label: what is being read, for error messages.
    """

    page_size: int
    label: str = "collection"

    def pages(self, fetch: FetchPage) -> Iterator[Mapping[str, Any]]:
        """Yield non-empty column-major pages in order.

        Raises:
            FatalError: when a page starts with the same record as the previous page, i.e.
                the server ignores ``offset``.
        """
        offset = 0
        previous_first: bytes | None = None
        while True:
            payload = fetch(self.page_size, offset)
            length = payload_length(payload)
            if length == 0:
                return
            first = orjson.dumps(
                first_row(payload), default=_json_text, option=orjson.OPT_SORT_KEYS
            )
            if first == previous_first:
                raise FatalError(
                    f"reading {self.label}: the page at offset {offset} starts with the same "
                    "record as the previous page, so the server ignores 'offset'; a full read "
                    "cannot be paged. Raise the page size to cover the whole collection, or "
                    "read it incrementally by lastUpdatedDate"
                )
            previous_first = first
            yield payload
            if length < self.page_size:
                return
            offset += length


def _json_text(value: Any) -> str:
    # Values of deferred fields are still JSON text (msgspec.Raw): compare them as text.
    return bytes(value).decode()
