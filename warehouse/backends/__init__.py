"""One backend per database the warehouse runs on, chosen once per dialect.

``backend_for(conn_or_engine)`` returns the ``WarehouseBackend`` of the bind's database
(PostgreSQL or SQLite); the rest of ``warehouse`` asks it for whatever differs between them
and never tests the database's name itself.
"""

from __future__ import annotations

import sqlalchemy as sa

from warehouse.backends.base import WaitForLock, WarehouseBackend
from warehouse.backends.postgres import PostgresBackend
from warehouse.backends.sqlite import SqliteBackend

__all__ = [
    "PostgresBackend",
    "SqliteBackend",
    "WaitForLock",
    "WarehouseBackend",
    "backend_for",
    "backend_named",
]

#: The backend of each supported dialect; backends are stateless, so one instance each.
_BACKENDS: dict[str, WarehouseBackend] = {
    backend.name: backend for backend in (PostgresBackend(), SqliteBackend())
}


def backend_for(bind: sa.Connection | sa.Engine) -> WarehouseBackend:
    """The backend of the database ``bind`` talks to.

    Raises:
        NotImplementedError: The database is neither PostgreSQL nor SQLite.
    """
    try:
        return _BACKENDS[bind.dialect.name]
    except KeyError:
        raise NotImplementedError(f"unsupported warehouse dialect {bind.dialect.name!r}") from None


def backend_named(name: str) -> WarehouseBackend | None:
    """The backend of the SQLAlchemy backend ``name`` ("postgresql", "sqlite"), or None."""
    return _BACKENDS.get(name)
