"""The rule of a quarantine reason: what the data-quality report groups by."""

from __future__ import annotations

import pytest

from pipeline.quality import reason_rule, record_rules, split_reasons


@pytest.mark.parametrize(
    ("reason", "rule"),
    [
        pytest.param("cost must be between 0 and 1e+09 (got -5.0)",
                     "cost must be between 0 and 1e+09", id="value"),
        pytest.param("cost must be between 0 and 1e+09 (got 7e12)",
                     "cost must be between 0 and 1e+09", id="other-value"),
        pytest.param("name is missing", "name is missing", id="no-value"),
        pytest.param("line 2: unit_price is missing", "unit_price is missing", id="line"),
        pytest.param("line 12: quantity must be >= 0 (got -1, line total -9.5)",
                     "quantity must be >= 0", id="line-and-more-in-parentheses"),
        pytest.param("cost is not a number (got '12x')", "cost is not a number", id="text-value"),
        pytest.param("cost is not a number (got ' (got x)')", "cost is not a number",
                     id="cut-at-the-first-mark"),
        pytest.param("status must be one of (A, B) (got 'C')", "status must be one of (A, B)",
                     id="parentheses-in-the-rule"),
        pytest.param("  name is missing ", "name is missing", id="spaces"),
        pytest.param("pipeline line 2: x", "pipeline line 2: x", id="line-only-as-prefix"),
    ],
)  # fmt: skip
def test_reason_rule(reason: str, rule: str) -> None:
    assert reason_rule(reason) == rule


@pytest.mark.parametrize(
    ("text", "reasons"),
    [
        pytest.param("name is missing", ["name is missing"], id="one"),
        pytest.param("cost must be between 0 and 1e+09 (got -5.0); name is missing",
                     ["cost must be between 0 and 1e+09 (got -5.0)", "name is missing"],
                     id="two"),
        pytest.param("name is not text (got 'a; b'); sku is missing",
                     ["name is not text (got 'a; b')", "sku is missing"],
                     id="separator-inside-a-value"),
        pytest.param("sku is not in the catalogue (sync products first; never guessed); "
                     "sku is missing",
                     ["sku is not in the catalogue (sync products first; never guessed)",
                      "sku is missing"],
                     id="separator-inside-the-rule's-parentheses"),
        pytest.param("", [], id="empty"),
    ],
)  # fmt: skip
def test_split_reasons(text: str, reasons: list[str]) -> None:
    assert split_reasons(text) == reasons


def test_a_record_fails_each_rule_once() -> None:
    text = (
        "line 1: unit_price is missing; line 2: unit_price is missing; "
        "line 2: quantity must be >= 0 (got -1)"
    )
    assert record_rules(text) == {"unit_price is missing", "quantity must be >= 0"}
