"""The hand-written GraphQL parser (no server needed)."""

from __future__ import annotations

import pytest

from sandbox.gqlparse import EnumValue, GraphQLError, Variable, parse, resolve


def test_parses_named_query_with_variables_aliases_and_literals() -> None:
    (op,) = parse(
        """
        # a comment
        query Page($after: String, $first: Int = 25, $types: [String!]!) {
          p: productViewConnection(first: $first, after: $after, formatter: "none") {
            edges { node { productId, cost(formatter: \"\"\"none\"\"\") } cursor }
          }
          orderViewConnection(type: $types, flag: true, x: null, y: -1.5e2, z: ACTIVE,
                              o: {a: [1, 2]}) { pageInfo { hasNextPage } }
        }
        """
    )
    assert op.name == "Page"
    assert op.variables == {"after": None, "first": 25, "types": None}
    products, orders = op.selections
    assert (products.alias, products.name, products.key) == ("p", "productViewConnection", "p")
    assert products.arguments["first"] == Variable("first")
    node = products.selections[0].selections[0]
    assert [f.name for f in node.selections] == ["productId", "cost"]
    assert node.selections[1].arguments == {"formatter": "none"}
    args = orders.arguments
    assert (args["flag"], args["x"], args["y"], args["z"]) == (
        True,
        None,
        -150.0,
        EnumValue("ACTIVE"),
    )
    resolved = resolve(args["o"], {})
    assert resolved == {"a": [1, 2]}
    assert resolve(args["type"], {"types": ["SALES_ORDER"]}) == ["SALES_ORDER"]


def test_anonymous_shorthand_query() -> None:
    (op,) = parse("{ partyViewConnection { edges { node { name } } } }")
    assert op.name is None and op.selections[0].name == "partyViewConnection"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("{ a { b }", "Syntax", id="unclosed"),
        pytest.param("{ a(x: ) }", "Syntax", id="missing-value"),
        pytest.param("{ a ...F }", "fragments", id="fragment-spread"),
        pytest.param("fragment F on T { a }", "fragments", id="fragment-definition"),
        pytest.param("{ a @include(if: true) }", "directives", id="directive"),
        pytest.param("subscription { a }", "subscription", id="subscription"),
        pytest.param('{ a(x: "unterminated) }', "Syntax", id="bad-string"),
        pytest.param("{ }", "empty selection", id="empty-selection"),
    ],
)
def test_rejects_bad_or_unsupported_queries(text: str, fragment: str) -> None:
    with pytest.raises(GraphQLError, match=fragment):
        parse(text)
