"""Both paths read the same rows into identical frames: full and incremental reads, pages cut
by the server's cap, runs of equal ``updated_at`` across page boundaries, hostile values."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pandas as pd
import psycopg
import pytest
from postgrest_double import DoubleConfig, RunningDouble, start_in_thread
from supabase_support import (
    BASE,
    HOSTILE_TEXTS,
    NOTES,
    REQUESTS,
    insert_requests,
    read_all,
    request_rows,
)

from connectors.supabase import (
    AppTable,
    AppTableReader,
    InvalidRequestError,
    Kind,
    PostgresReader,
    RestReader,
    SupabaseSettings,
    open_reader,
)

pytestmark = pytest.mark.postgres


def _expected(app_db: str, since: datetime | None = None) -> pd.DataFrame:
    """The rows as PostgreSQL sorts them, read by a plain query (not by either reader)."""
    with psycopg.connect(app_db) as conn:
        rows = conn.execute(
            "SELECT id, updated_at FROM purchase_order_requests "
            "WHERE updated_at > coalesce(%s::timestamptz, '-infinity') ORDER BY updated_at, id",
            (since,),
        ).fetchall()
    return pd.DataFrame(rows, columns=["id", "updated_at"])


def _fill(app_db: str, count: int) -> list[tuple[object, ...]]:
    rows = list(request_rows(count))
    with psycopg.connect(app_db, autocommit=True) as conn:
        insert_requests(conn, rows)
    return rows


def test_full_read_gives_identical_frames_on_both_paths(
    app_db: str, settings: SupabaseSettings
) -> None:
    _fill(app_db, 40)
    with PostgresReader(settings) as direct, RestReader(settings) as rest:
        direct_pages = list(direct.read_changed(REQUESTS))
        rest_pages = list(rest.read_changed(REQUESTS))
    assert [len(p) for p in direct_pages] == [7, 7, 7, 7, 7, 5]
    assert [len(p) for p in rest_pages] == [7, 7, 7, 7, 7, 5]
    for ours, theirs in zip(direct_pages, rest_pages, strict=True):
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
    frame = pd.concat(direct_pages, ignore_index=True)
    expected = _expected(app_db)
    assert frame["id"].tolist() == expected["id"].tolist()
    assert list(frame.columns) == list(REQUESTS.column_names)
    assert frame.dtypes.astype(str).to_dict() == {
        "id": "Int64",
        "updated_at": "datetime64[us, UTC]",
        "vendor": "string",
        "note": "string",
        "quantity": "Int64",
        "unit_price": "object",
        "weight": "Float64",
        "urgent": "boolean",
        "needed_by": "object",
        "request_uuid": "string",
        "lines": "object",
        "created_at": "datetime64[us, UTC]",
    }


def test_values_survive_both_paths_exactly(app_db: str, settings: SupabaseSettings) -> None:
    rows = {r[0]: r for r in _fill(app_db, 24)}
    with PostgresReader(settings) as direct, RestReader(settings) as rest:
        frames = [read_all(direct, REQUESTS), read_all(rest, REQUESTS)]
    for frame in frames:
        by_id = frame.set_index("id")
        for ident, row in rows.items():
            got = by_id.loc[ident]
            assert got["updated_at"] == pd.Timestamp(row[1])
            assert (None if pd.isna(got["vendor"]) else got["vendor"]) == row[2]
            assert (None if pd.isna(got["note"]) else got["note"]) == row[3]
            price = got["unit_price"]
            assert price == row[5] if row[5] is not None else price is None
            if row[5] is not None:
                # numeric(14, 4): exact digits, the same scale on both paths
                assert str(price) == str(row[5].quantize(Decimal("0.0001")))
            assert got["lines"] == (row[10].obj if row[10] is not None else None)
            created = got["created_at"]
            if row[11] is None:
                assert pd.isna(created)
            else:  # timestamp without time zone: read as UTC
                assert created == pd.Timestamp(row[11]).tz_localize("UTC")
    hostile = set(frames[1]["note"].dropna())
    assert hostile == {t for t in HOSTILE_TEXTS if t in hostile} and len(hostile) >= 8
    assert frames[0]["weight"].isin([float("inf")]).any()
    pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=True)


def test_incremental_read_returns_rows_strictly_after_since(
    app_db: str, settings: SupabaseSettings
) -> None:
    _fill(app_db, 40)
    since = BASE + timedelta(seconds=4, microseconds=28)  # exactly the 13th-15th rows' stamp
    with PostgresReader(settings) as direct, RestReader(settings) as rest:
        ours, theirs = read_all(direct, REQUESTS, since), read_all(rest, REQUESTS, since)
    expected = _expected(app_db, since)
    assert len(expected) == 40 - 15
    assert ours["id"].tolist() == expected["id"].tolist()
    assert (ours["updated_at"] > pd.Timestamp(since)).all()
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)


def test_until_bounds_the_read_inclusively_on_both_paths(
    app_db: str, settings: SupabaseSettings
) -> None:
    _fill(app_db, 40)
    since = BASE + timedelta(seconds=2, microseconds=14)  # rows 7-9 share this stamp
    until = BASE + timedelta(seconds=9, microseconds=63)  # rows 27-29 share this one
    with PostgresReader(settings) as direct, RestReader(settings) as rest:
        ours = read_all(direct, REQUESTS, since, until=until)
        theirs = read_all(rest, REQUESTS, since, until=until)
    expected = _expected(app_db, since)
    expected = expected[expected["updated_at"] <= until]
    assert len(expected) == 30 - 9
    assert ours["id"].tolist() == expected["id"].tolist()
    assert ours["updated_at"].max() == pd.Timestamp(until)
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)


def test_since_in_another_zone_means_the_same_instant(
    app_db: str, settings: SupabaseSettings
) -> None:
    _fill(app_db, 30)
    since = BASE + timedelta(seconds=3, microseconds=21)
    elsewhere = since.astimezone(datetime.now().astimezone().tzinfo)
    from zoneinfo import ZoneInfo

    kathmandu = since.astimezone(ZoneInfo("Asia/Kathmandu"))
    with RestReader(settings) as rest, PostgresReader(settings) as direct:
        base = read_all(rest, REQUESTS, since)
        for other in (elsewhere, kathmandu):
            pd.testing.assert_frame_equal(read_all(rest, REQUESTS, other), base)
            pd.testing.assert_frame_equal(read_all(direct, REQUESTS, other), base)


def test_pages_cut_by_the_server_cap_still_deliver_every_row_once(
    app_db: str, settings: SupabaseSettings, postgrest: RunningDouble
) -> None:
    _fill(app_db, 40)
    postgrest.state.config.max_rows = 3  # below the page size of 7
    with RestReader(settings) as rest, PostgresReader(settings) as direct:
        pages = list(rest.read_changed(REQUESTS))
        reference = read_all(direct, REQUESTS)
    assert [len(p) for p in pages] == [3] * 13 + [1]
    frame = pd.concat(pages, ignore_index=True)
    pd.testing.assert_frame_equal(frame, reference, check_exact=True)
    asked = [r for r in postgrest.state.requests if r.table == REQUESTS.name]
    # 14 pages, no extra empty request: the count said when the rows were all there.
    assert len(asked) == 14
    assert all(dict(r.params)["limit"] == "7" for r in asked)
    assert [r.status for r in asked] == [206] * 13 + [200]


def test_without_a_count_short_pages_are_followed_until_an_empty_one(
    app_db: str, settings: SupabaseSettings, postgrest: RunningDouble
) -> None:
    _fill(app_db, 20)
    postgrest.state.config.max_rows = 6  # below the page size of 7
    postgrest.state.config.counts = False
    with RestReader(settings) as rest, PostgresReader(settings) as direct:
        pages = list(rest.read_changed(REQUESTS))
        reference = read_all(direct, REQUESTS)
    assert [len(p) for p in pages] == [6, 6, 6, 2]
    pd.testing.assert_frame_equal(pd.concat(pages, ignore_index=True), reference)
    asked = [r for r in postgrest.state.requests if r.table == REQUESTS.name]
    assert [r.rows for r in asked] == [6, 6, 6, 2, 0]  # the empty answer ends the read


def test_many_rows_sharing_one_updated_at_page_by_key(
    app_db: str, settings: SupabaseSettings, postgrest: RunningDouble
) -> None:
    rows = list(request_rows(50))
    same = [(r[0], BASE, *r[2:]) for r in rows]  # all 50 share one updated_at
    with psycopg.connect(app_db, autocommit=True) as conn:
        insert_requests(conn, same)
    postgrest.state.config.max_rows = 4
    with RestReader(settings) as rest, PostgresReader(settings) as direct:
        ours, theirs = read_all(direct, REQUESTS), read_all(rest, REQUESTS)
        later = read_all(rest, REQUESTS, BASE)
    assert ours["id"].tolist() == sorted(r[0] for r in rows)
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
    assert later.empty and list(later.columns) == list(REQUESTS.column_names)


def test_text_keys_with_reserved_characters_page_correctly_in_another_schema(
    app_db: str, settings: SupabaseSettings
) -> None:
    codes = [*HOSTILE_TEXTS[:10], "Ω", "z", "A", "a"]
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO app.vendor_notes (code, updated_at, body) VALUES (%s, %s, %s)",
            [(code, BASE + timedelta(seconds=i % 2), f"note {i}") for i, code in enumerate(codes)],
        )
        expected = [
            r[0]
            for r in conn.execute(
                "SELECT code FROM app.vendor_notes ORDER BY updated_at, code"
            ).fetchall()
        ]
    small = settings.model_copy(update={"page_size": 2})
    with RestReader(small) as rest, PostgresReader(small) as direct:
        ours, theirs = read_all(direct, NOTES), read_all(rest, NOTES)
    assert ours["code"].tolist() == expected
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)


def test_timestamps_are_utc_whatever_zone_the_server_renders_in(
    app_db: str, service_key: str
) -> None:
    _fill(app_db, 12)
    config = DoubleConfig(db_url=app_db, api_key=service_key, timezone="Asia/Kathmandu")
    with start_in_thread(config) as api:
        settings = SupabaseSettings(
            db_url=app_db, url=api.base_url, service_role_key=service_key, page_size=5
        )
        with RestReader(settings) as rest, PostgresReader(settings) as direct:
            frame = read_all(rest, REQUESTS)
            pd.testing.assert_frame_equal(frame, read_all(direct, REQUESTS), check_exact=True)
    assert str(frame["updated_at"].dt.tz) == "UTC"
    assert frame["updated_at"].iloc[0] == pd.Timestamp(BASE)


def test_an_unchanged_table_yields_no_pages(app_db: str, settings: SupabaseSettings) -> None:
    _fill(app_db, 5)
    later = BASE + timedelta(days=1)
    with RestReader(settings) as rest, PostgresReader(settings) as direct:
        assert list(rest.read_changed(REQUESTS, later)) == []
        assert list(direct.read_changed(REQUESTS, later)) == []


def test_a_naive_since_is_refused_before_anything_is_sent(
    settings: SupabaseSettings, postgrest: RunningDouble
) -> None:
    for reader in (RestReader(settings), PostgresReader(settings)):
        with reader, pytest.raises(InvalidRequestError, match="since must be an aware"):
            next(reader.read_changed(REQUESTS, datetime(2026, 1, 1)))
        with pytest.raises(InvalidRequestError, match="until must be an aware"):
            next(reader.read_changed(REQUESTS, None, until=datetime(2026, 1, 1)))
    assert postgrest.state.requests == []


def test_open_reader_picks_the_configured_path(app_db: str, settings: SupabaseSettings) -> None:
    _fill(app_db, 3)
    rest_only = settings.model_copy(update={"db_url": None})
    with open_reader(settings) as direct, open_reader(rest_only) as rest:
        assert isinstance(direct, PostgresReader) and isinstance(rest, RestReader)
        assert isinstance(direct, AppTableReader) and isinstance(rest, AppTableReader)
        pd.testing.assert_frame_equal(read_all(direct, REQUESTS), read_all(rest, REQUESTS))


def test_a_subset_of_columns_reads_the_same_on_both_paths(
    app_db: str, settings: SupabaseSettings
) -> None:
    _fill(app_db, 10)
    narrow = AppTable("purchase_order_requests", key="id", columns={"note": Kind.TEXT})
    with RestReader(settings) as rest, PostgresReader(settings) as direct:
        ours, theirs = read_all(direct, narrow), read_all(rest, narrow)
    assert list(ours.columns) == ["id", "updated_at", "note"]
    assert ours["id"].dtype == "string"  # the key is text unless its kind is given
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
