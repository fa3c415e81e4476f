"""``SUPABASE_DB_URL``: secret-typed, normalised for psycopg 3, refused naming the variable."""

from __future__ import annotations

import pytest

from invsync.settings import ConfigError, Settings


def test_the_app_database_url_is_secret_and_normalised() -> None:
    settings = Settings(supabase_db_url="postgres://app:Hush-5ecret@db.example:5432/postgres")

    assert "Hush-5ecret" not in repr(settings) and "Hush-5ecret" not in str(settings)
    assert settings.app_db_url() == "postgresql+psycopg://app:Hush-5ecret@db.example:5432/postgres"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        pytest.param(None, "SUPABASE_DB_URL is not set", id="missing"),
        pytest.param("", "SUPABASE_DB_URL is not set", id="empty"),
        pytest.param("not a url", "SUPABASE_DB_URL is not a database URL", id="garbage"),
        pytest.param("mysql://u:Hush-5ecret@h/db", "must be a PostgreSQL URL", id="mysql"),
    ],
)
def test_a_missing_or_wrong_app_database_url_names_the_variable(
    value: str | None, fragment: str
) -> None:
    settings = Settings(supabase_db_url=value)

    with pytest.raises(ConfigError) as caught:
        settings.app_db_url()

    assert fragment in str(caught.value)
    assert "Hush-5ecret" not in str(caught.value)
