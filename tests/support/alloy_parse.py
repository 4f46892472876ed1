"""A parser for Grafana Alloy's configuration syntax, enough to read back what
components/renderers/alloy.py writes and fail on anything else: blocks with optional labels,
attributes, strings (Go escapes and `raw` strings), numbers, bools, null, lists, objects,
references (`a.b.c`) and function calls (`sys.env("X")`), `//` and `/* */` comments.

It stands in for `alloy fmt`/`alloy run --dry-run`, whose binary is not installable here (Alloy
is not packaged for Debian; nothing may be downloaded). Grammar: Alloy's syntax reference,
docs/sources/get-started/configuration-syntax/ (grafana/alloy v1.18).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(
    r"""(?P<space>\s+)|(?P<comment>//[^\n]*|/\*.*?\*/)
    |(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<raw>`[^`]*`)
    |(?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[{}\[\]().,=])""",
    re.X | re.S,
)


class AlloySyntaxError(ValueError):
    """The text is not Alloy syntax (with the line it failed at)."""


@dataclass(frozen=True)
class Ref:
    """A reference expression: `loki.write.loki.receiver`."""

    path: str


@dataclass(frozen=True)
class Call:
    """A function call: `sys.env("HOST")`."""

    function: str
    args: tuple[Any, ...]


@dataclass
class ParsedBlock:
    """A block as written: its name, label, attributes (in order) and nested blocks."""

    name: str
    label: str | None
    line: int
    attributes: dict[str, Any] = field(default_factory=dict)
    blocks: list[ParsedBlock] = field(default_factory=list)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    line: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, line = 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise AlloySyntaxError(f"line {line}: unexpected {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        if kind not in ("space", "comment"):
            tokens.append(_Token(kind, match.group(), line))
        line += match.group().count("\n")
        pos = match.end()
    tokens.append(_Token("eof", "", line))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def take(self, kind: str, text: str | None = None) -> _Token:
        token = self.peek()
        if token.kind != kind or (text is not None and token.text != text):
            wanted = text or kind
            raise AlloySyntaxError(f"line {token.line}: expected {wanted}, found {token.text!r}")
        self.at += 1
        return token

    def accept(self, text: str) -> bool:
        if self.peek().kind == "punct" and self.peek().text == text:
            self.at += 1
            return True
        return False

    def body(self, end: str) -> tuple[dict[str, Any], list[ParsedBlock]]:
        attributes: dict[str, Any] = {}
        blocks: list[ParsedBlock] = []
        while not (
            self.peek().kind == end or (self.peek().kind == "punct" and self.peek().text == end)
        ):
            start = self.take("ident")
            name = start.text
            while self.accept("."):
                name += "." + self.take("ident").text
            if self.accept("="):
                if "." in name:
                    raise AlloySyntaxError(f"line {start.line}: attribute name {name!r} has a dot")
                if name in attributes:
                    raise AlloySyntaxError(f"line {start.line}: attribute {name!r} set twice")
                attributes[name] = self.expression()
                continue
            label = None
            if self.peek().kind == "string":
                label = json.loads(self.take("string").text)
            self.take("punct", "{")
            inner_attributes, inner_blocks = self.body("}")
            self.take("punct", "}")
            blocks.append(ParsedBlock(name, label, start.line, inner_attributes, inner_blocks))
        return attributes, blocks

    def expression(self) -> Any:
        token = self.peek()
        if token.kind in ("string", "raw", "number"):
            self.at += 1
            return _literal(token)
        if self.accept("["):
            return self.array()
        if self.accept("{"):
            return self.object()
        if token.kind == "ident":
            self.at += 1
            return self.name(token)
        raise AlloySyntaxError(f"line {token.line}: expected a value, found {token.text!r}")

    def array(self) -> list[Any]:
        items = []
        while not self.accept("]"):
            items.append(self.expression())
            if not self.accept(","):
                self.take("punct", "]")
                break
        return items

    def object(self) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        while not self.accept("}"):
            key_token = self.peek()
            key = (
                json.loads(self.take("string").text)
                if key_token.kind == "string"
                else self.take("ident").text
            )
            self.take("punct", "=")
            if key in obj:
                raise AlloySyntaxError(f"line {key_token.line}: key {key!r} set twice")
            obj[key] = self.expression()
            if not self.accept(","):
                self.take("punct", "}")
                break
        return obj

    def name(self, token: _Token) -> Any:
        """After an identifier: a constant, a reference `a.b.c`, or a call `a.b(args)`."""
        if token.text in ("true", "false"):
            return token.text == "true"
        if token.text == "null":
            return None
        path = token.text
        while self.accept("."):
            path += "." + self.take("ident").text
        if self.accept("("):
            args = []
            while not self.accept(")"):
                args.append(self.expression())
                if not self.accept(","):
                    self.take("punct", ")")
                    break
            return Call(path, tuple(args))
        return Ref(path)


def _literal(token: _Token) -> Any:
    if token.kind == "string":
        return json.loads(token.text)
    if token.kind == "raw":
        return token.text[1:-1]
    return float(token.text) if "." in token.text or "e" in token.text.lower() else int(token.text)


def parse_alloy(text: str) -> list[ParsedBlock]:
    """The top-level blocks of an Alloy file (an attribute at the top level is an error)."""
    parser = _Parser(text)
    attributes, blocks = parser.body("eof")
    if attributes:
        raise AlloySyntaxError(f"top-level attributes are not allowed: {sorted(attributes)}")
    return blocks
