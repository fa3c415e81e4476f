"""The thresholds file: the shipped one holds the documented defaults; a bad one is refused
with an error naming the file and the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from invsync.settings import ConfigError, load_settings
from pipeline.dq import (
    CHECK_NAMES,
    DEFAULT_SYNC_CHECKS,
    DQConfigError,
    Thresholds,
    load_dq_config,
)
from pipeline.dq.config import DEFAULT_CONFIG_PATH


def test_the_shipped_file_states_the_built_in_defaults() -> None:
    raw = tomllib.loads(DEFAULT_CONFIG_PATH.read_text())
    assert Thresholds(**raw["defaults"]) == Thresholds()
    assert set(raw["defaults"]) == set(Thresholds.model_fields) - {"min_completeness_by_column"}
    assert tuple(raw["sync_checks"]) == DEFAULT_SYNC_CHECKS
    config = load_dq_config()
    assert config.source == str(DEFAULT_CONFIG_PATH)
    assert config.thresholds("facilities").max_data_age_hours == 8760.0
    assert config.thresholds("products") == Thresholds()


def test_every_documented_key_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in [*Thresholds.model_fields, *CHECK_NAMES, "DQ_CONFIG", "ANALYTICS_URL"]:
        assert f"`{name}`" in readme, name


def test_an_entity_inherits_the_defaults_and_overrides_some(tmp_path: Path) -> None:
    path = tmp_path / "dq.toml"
    path.write_text(
        'sync_checks = ["row_count"]\n'
        "[defaults]\nmax_orphan_share = 0.1\n"
        "[entities.products]\nmin_rows = 500\n"
        "[entities.products.min_completeness_by_column]\nprimary_vendor_party_id = 0.9\n"
    )
    config = load_dq_config(path)
    assert config.sync_checks == ("row_count",)
    products = config.thresholds("products")
    assert (products.min_rows, products.max_orphan_share) == (500, 0.1)
    assert products.min_completeness_by_column == {"primary_vendor_party_id": 0.9}
    assert config.thresholds("stock").max_orphan_share == 0.1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[defaults]\nmax_orphan_shares = 0.1\n",
                     "defaults.max_orphan_shares: unknown key", id="misspelt-key"),
        pytest.param("[defaults]\nmax_row_drop = 1.5\n",
                     "defaults.max_row_drop: Input should be less than or equal to 1",
                     id="out-of-range"),
        pytest.param("[entities.products]\nmin_rows = 'many'\n",
                     "entities.products.min_rows: Input should be a valid integer",
                     id="wrong-type-in-an-entity"),
        pytest.param("[defaults]\nmax_invalid_share = -1\n[entities.stock]\nmin_rows = 2\n",
                     "defaults.max_invalid_share: Input should be greater than or equal to 0",
                     id="inherited-bad-value-named-where-it-is"),
        pytest.param("[entities.widgets]\nmin_rows = 1\n",
                     "entities.widgets: unknown entity; choose from facilities, vendors",
                     id="unknown-entity"),
        pytest.param("[entities.products.min_completeness_by_column]\nnope = 1.0\n",
                     "entities.products.min_completeness_by_column.nope: products has no such "
                     "column", id="unknown-column"),
        pytest.param("[defaults.min_completeness_by_column]\nsku = 1.0\n",
                     "defaults.min_completeness_by_column: columns differ per entity",
                     id="columns-in-defaults"),
        pytest.param('sync_checks = ["row_count", "vibes"]\n',
                     "sync_checks: unknown check 'vibes'; choose from row_count",
                     id="unknown-check"),
        pytest.param("[thresholds]\nmin_rows = 1\n", "unknown key 'thresholds'",
                     id="unknown-table"),
        pytest.param("[defaults\nmin_rows = 1\n", "not valid TOML", id="not-toml"),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_naming_the_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "dq.toml"
    path.write_text(text)
    with pytest.raises(DQConfigError) as caught:
        load_dq_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert isinstance(caught.value, ConfigError), "the CLI reports it like any bad setting"


def test_dq_config_setting_points_at_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "mine.toml"
    path.write_text("[defaults]\nmin_rows = 7\n")
    monkeypatch.setenv("DQ_CONFIG", str(path))
    monkeypatch.setenv("ANALYTICS_URL", "s3://bucket/dq")
    settings = load_settings()
    assert settings.dq_config == path and settings.analytics_url == "s3://bucket/dq"
    assert load_dq_config(settings.dq_config).thresholds("stock").min_rows == 7
    monkeypatch.setenv("DQ_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(DQConfigError, match=r"^DQ_CONFIG: no thresholds file at .*missing\.toml"):
        load_dq_config(load_settings().dq_config)
