"""Hypothesis attacks the paging: random row counts, runs of equal ``updated_at`` one
microsecond apart, page sizes, server caps, ``since`` and ``until`` anywhere, hostile text
keys. Every
row after ``since`` arrives exactly once, in order, identically on both paths."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pandas as pd
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from postgrest_double import RunningDouble
from supabase_support import BASE, NOTES, REQUESTS

from connectors.supabase import PostgresReader, RestReader, SupabaseSettings

pytestmark = pytest.mark.postgres

PROPERTY_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_TEXT_KEYS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=6,
)


def _read_both(
    connector: SupabaseSettings, table: Any, since: Any, until: Any = None
) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    with RestReader(connector, sleep=lambda _: None) as rest, PostgresReader(connector) as direct:
        return (
            list(rest.read_changed(table, since, until=until)),
            list(direct.read_changed(table, since, until=until)),
        )


def _check(
    rest_pages: list[pd.DataFrame],
    direct_pages: list[pd.DataFrame],
    expected_keys: list[Any],
    page_size: int,
    cap: int | None,
    key: str,
) -> None:
    served = min(page_size, cap or page_size)
    assert all(0 < len(p) <= served for p in rest_pages)
    assert all(0 < len(p) <= page_size for p in direct_pages)
    assert [len(p) for p in direct_pages] == [
        min(page_size, len(expected_keys) - i) for i in range(0, len(expected_keys), page_size)
    ]
    if not expected_keys:
        assert rest_pages == [] and direct_pages == []
        return
    rest = pd.concat(rest_pages, ignore_index=True)
    direct = pd.concat(direct_pages, ignore_index=True)
    assert rest[key].tolist() == expected_keys
    pd.testing.assert_frame_equal(rest, direct, check_exact=True)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_integer_keys_with_duplicate_timestamps_page_exactly(
    app_db: str,
    postgrest: RunningDouble,
    settings: SupabaseSettings,
    data: st.DataObject,
) -> None:
    count = data.draw(st.integers(0, 45), label="rows")
    distinct = data.draw(st.integers(1, 6), label="distinct updated_at")
    page_size = data.draw(st.integers(1, 12), label="page size")
    cap = data.draw(st.none() | st.integers(1, 12), label="server max-rows")
    ids = data.draw(
        st.lists(st.integers(-(10**12), 10**12), min_size=count, max_size=count, unique=True)
    )
    slots = data.draw(st.lists(st.integers(0, distinct - 1), min_size=count, max_size=count))
    since_slot = data.draw(st.none() | st.integers(-1, distinct), label="since slot")
    until_slot = data.draw(st.none() | st.integers(-1, distinct), label="until slot")

    # One microsecond apart: a keyset value that lost precision would skip or repeat rows.
    stamps = [BASE + timedelta(microseconds=s) for s in slots]
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute("TRUNCATE purchase_order_requests")
        conn.cursor().executemany(
            "INSERT INTO purchase_order_requests (id, updated_at, note) VALUES (%s, %s, %s)",
            [(i, t, f"n{i}") for i, t in zip(ids, stamps, strict=True)],
        )
    postgrest.state.config.max_rows = cap
    requests_before = len(postgrest.state.requests)
    since = None if since_slot is None else BASE + timedelta(microseconds=since_slot)
    until = None if until_slot is None else BASE + timedelta(microseconds=until_slot)

    connector = settings.model_copy(update={"page_size": page_size})
    rest_pages, direct_pages = _read_both(connector, REQUESTS, since, until)

    expected = sorted(
        (t, i)
        for i, t in zip(ids, stamps, strict=True)
        if (since is None or t > since) and (until is None or t <= until)
    )
    _check(rest_pages, direct_pages, [i for _, i in expected], page_size, cap, "id")
    served = min(page_size, cap or page_size)
    sent = len(postgrest.state.requests) - requests_before
    # One request per served page; an empty read costs one request.
    assert sent == max(1, math.ceil(len(expected) / served))


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_hostile_text_keys_page_exactly(
    app_db: str,
    postgrest: RunningDouble,
    settings: SupabaseSettings,
    data: st.DataObject,
) -> None:
    codes = data.draw(st.lists(_TEXT_KEYS, max_size=25, unique=True), label="keys")
    slots = data.draw(st.lists(st.integers(0, 2), min_size=len(codes), max_size=len(codes)))
    page_size = data.draw(st.integers(1, 6), label="page size")
    cap = data.draw(st.none() | st.integers(1, 6), label="server max-rows")

    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute("TRUNCATE app.vendor_notes")
        conn.cursor().executemany(
            "INSERT INTO app.vendor_notes (code, updated_at, body) VALUES (%s, %s, %s)",
            [
                (c, BASE + timedelta(microseconds=s), c[::-1])
                for c, s in zip(codes, slots, strict=True)
            ],
        )
        # The database's collation decides the order of text keys: ask it.
        expected = [
            r[0]
            for r in conn.execute("SELECT code FROM app.vendor_notes ORDER BY updated_at, code")
        ]
    postgrest.state.config.max_rows = cap
    connector = settings.model_copy(update={"page_size": page_size})
    rest_pages, direct_pages = _read_both(connector, NOTES, None)
    _check(rest_pages, direct_pages, expected, page_size, cap, "code")
