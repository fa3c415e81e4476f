"""A small GraphQL query parser, enough for the connection queries the contract uses.

Supports: anonymous and named ``query`` operations, variable definitions with defaults,
aliases, arguments of every literal kind (int, float, string, block string, boolean, null,
enum, list, object) and variables, nested selection sets, comments and commas. Fragments,
directives, mutations and subscriptions are rejected with a clear message: the sandbox serves
reads only, and the connector does not need them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson


class GraphQLError(Exception):
    """A query that cannot be parsed or executed; answered in the ``errors`` array."""


@dataclass(frozen=True)
class Variable:
    """A ``$name`` reference inside an argument value."""

    name: str


@dataclass(frozen=True)
class EnumValue:
    """A bare name used as a value (``ACTIVE``); resolves to its name as a string."""

    name: str


@dataclass
class Field:
    """One field of a selection set."""

    name: str
    alias: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    selections: list[Field] | None = None

    @property
    def key(self) -> str:
        """The response key (alias if given)."""
        return self.alias or self.name


@dataclass
class Operation:
    """A query operation: its name, variable defaults and top-level selections."""

    name: str | None
    variables: dict[str, Any]
    selections: list[Field]


_TOKEN = re.compile(
    r"""
    (?P<ignored>[\s,\ufeff]+|\#[^\n\r]*)
  | (?P<spread>\.\.\.)
  | (?P<punct>[!$&():=@\[\]{}|])
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
  | (?P<block>\"\"\"(?:[^"\\]|\\.|"(?!""))*\"\"\")
  | (?P<string>"(?:[^"\\\n\r]|\\.)*")
    """,
    re.VERBOSE,
)


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise GraphQLError(f"Syntax Error: unexpected character {text[pos]!r} at {pos}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "ignored":
            tokens.append((kind, match.group(), pos))
        pos = match.end()
    tokens.append(("eof", "", pos))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def next(self) -> tuple[str, str, int]:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, value: str) -> None:
        kind, text, pos = self.next()
        if text != value or kind not in ("punct", "spread", "name"):
            shown = text or "end of query"
            raise GraphQLError(f"Syntax Error: expected {value!r}, found {shown!r} at {pos}")

    def at(self, value: str) -> bool:
        kind, text, _ = self.peek()
        return text == value and kind in ("punct", "name", "spread")

    def name(self) -> str:
        kind, text, pos = self.next()
        if kind != "name":
            raise GraphQLError(f"Syntax Error: expected a name, found {text!r} at {pos}")
        return text

    def document(self) -> list[Operation]:
        operations = []
        while self.peek()[0] != "eof":
            operations.append(self.operation())
        if not operations:
            raise GraphQLError("Syntax Error: the query is empty")
        return operations

    def operation(self) -> Operation:
        if self.at("{"):
            return Operation(None, {}, self.selection_set())
        keyword = self.name()
        if keyword == "fragment":
            raise GraphQLError("fragments are not supported by the sandbox")
        if keyword in ("mutation", "subscription"):
            raise GraphQLError(f"{keyword} operations are not supported; use the REST API")
        if keyword != "query":
            raise GraphQLError(f"Syntax Error: unexpected {keyword!r}")
        name = self.name() if self.peek()[0] == "name" else None
        variables: dict[str, Any] = {}
        if self.at("("):
            self.next()
            while not self.at(")"):
                self.expect("$")
                var = self.name()
                self.expect(":")
                self.type_ref()
                variables[var] = self.value(const=True) if self._eat("=") else None
            self.next()
        self._no_directives()
        return Operation(name, variables, self.selection_set())

    def _eat(self, value: str) -> bool:
        if self.at(value):
            self.next()
            return True
        return False

    def _no_directives(self) -> None:
        if self.at("@"):
            raise GraphQLError("directives are not supported by the sandbox")

    def type_ref(self) -> None:
        if self._eat("["):
            self.type_ref()
            self.expect("]")
        else:
            self.name()
        self._eat("!")

    def selection_set(self) -> list[Field]:
        self.expect("{")
        fields = []
        while not self.at("}"):
            if self.at("..."):
                raise GraphQLError("fragments are not supported by the sandbox")
            if self.peek()[0] == "eof":
                raise GraphQLError("Syntax Error: unterminated selection set")
            fields.append(self.field())
        self.next()
        if not fields:
            raise GraphQLError("Syntax Error: empty selection set")
        return fields

    def field(self) -> Field:
        name = self.name()
        alias = None
        if self._eat(":"):
            alias, name = name, self.name()
        arguments: dict[str, Any] = {}
        if self._eat("("):
            while not self.at(")"):
                arg = self.name()
                self.expect(":")
                arguments[arg] = self.value(const=False)
            self.next()
        self._no_directives()
        selections = self.selection_set() if self.at("{") else None
        return Field(name, alias, arguments, selections)

    def value(self, *, const: bool) -> Any:
        kind, text, pos = self.next()
        if kind == "punct" and text == "$":
            if const:
                raise GraphQLError(f"Syntax Error: variable not allowed here at {pos}")
            return Variable(self.name())
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "string":
            return orjson.loads(text)  # GraphQL string escapes are JSON's
        if kind == "block":
            return text[3:-3].replace('\\"""', '"""')
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, EnumValue(text))
        if kind == "punct" and text == "[":
            items = []
            while not self.at("]"):
                if self.peek()[0] == "eof":
                    raise GraphQLError("Syntax Error: unterminated list")
                items.append(self.value(const=const))
            self.next()
            return items
        if kind == "punct" and text == "{":
            obj = {}
            while not self.at("}"):
                key = self.name()
                self.expect(":")
                obj[key] = self.value(const=const)
            self.next()
            return obj
        raise GraphQLError(f"Syntax Error: unexpected {text or 'end of query'!r} at {pos}")


def parse(text: str) -> list[Operation]:
    """Parse a GraphQL document into its operations.

    Raises:
        GraphQLError: on syntax errors and unsupported features.
    """
    if not isinstance(text, str):
        raise GraphQLError("the request needs a 'query' string")
    return _Parser(text).document()


def resolve(value: Any, variables: dict[str, Any]) -> Any:
    """Replace variables and enum values inside an argument value with plain Python data."""
    if isinstance(value, Variable):
        return variables.get(value.name)
    if isinstance(value, EnumValue):
        return value.name
    if isinstance(value, list):
        return [resolve(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, variables) for k, v in value.items()}
    return value
