"""A small writer for Grafana Alloy's configuration syntax: blocks, attributes and values as
data, printed in Alloy's own layout. Pure text, no Alloy needed; the renderer
(components/renderers/alloy.py) builds the document and the tests parse it back.

Grammar written (Alloy's syntax reference, docs/sources/get-started/configuration-syntax/):
`name.parts "label" { attribute = value ... nested { ... } }`; values are strings (Go-style
escapes), numbers, bools, lists `[...]`, objects `{ key = value, "quoted" = value }`, and
expressions (component references such as `loki.write.default.receiver`, calls such as
`sys.env("HOST")`), which `Expr` carries verbatim.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INDENT = "  "


@dataclass(frozen=True)
class Expr:
    """An Alloy expression written as it is: a reference or a function call."""

    text: str


Value = str | int | float | bool | Expr | Sequence["Value"] | Mapping[str, "Value"]


@dataclass(frozen=True)
class Block:
    """A block: `name "label" { attributes, then nested blocks }` (attributes keep their order)."""

    name: str
    label: str | None = None
    attributes: Mapping[str, Value] = field(default_factory=dict)
    blocks: Sequence[Block] = ()

    def reference(self, export: str) -> Expr:
        """`name.label.export`: another component's reference to this one's export."""
        if self.label is None:
            raise ValueError(f"{self.name} has no label: nothing can reference it")
        return Expr(f"{self.name}.{self.label}.{export}")


def string(text: str) -> str:
    """An Alloy string literal (Go escapes: JSON's are a subset)."""
    return json.dumps(text)


def value(v: Value, depth: int = 0) -> str:  # noqa: PLR0911 (one return per Alloy type)
    """One value in Alloy syntax; objects and lists of objects span lines."""
    if isinstance(v, Expr):
        return v.text
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return string(v)
    pad = INDENT * (depth + 1)
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        keys = [k if _IDENTIFIER.match(k) else string(k) for k in v]
        width = max(len(k) for k in keys)
        items = [
            f"{pad}{k.ljust(width)} = {value(x, depth + 1)},"
            for k, x in zip(keys, v.values(), strict=True)
        ]
        return "{\n" + "\n".join(items) + "\n" + INDENT * depth + "}"
    items_text = [value(x, depth + 1) for x in v]
    if any("\n" in t for t in items_text):
        return "[\n" + "\n".join(f"{pad}{t}," for t in items_text) + "\n" + INDENT * depth + "]"
    return "[" + ", ".join(items_text) + "]"


def block(b: Block, depth: int = 0) -> str:
    """One block, nested blocks indented under it."""
    pad = INDENT * depth
    head = b.name if b.label is None else f"{b.name} {string(b.label)}"
    if not b.attributes and not b.blocks:
        return f"{pad}{head} {{}}"
    lines = [f"{pad}{head} {{"]
    if b.attributes:
        width = max(len(k) for k in b.attributes)
        lines += [
            f"{pad}{INDENT}{k.ljust(width)} = {value(v, depth + 1)}"
            for k, v in b.attributes.items()
        ]
    for n, nested in enumerate(b.blocks):
        if b.attributes or n:
            lines.append("")
        lines.append(block(nested, depth + 1))
    lines.append(f"{pad}}}")
    return "\n".join(lines)


def document(blocks: Sequence[Block], header: str = "") -> str:
    """A whole configuration file: an optional `//` comment header, then the blocks."""
    comment = "".join(f"// {line}\n".replace("// \n", "//\n") for line in header.splitlines())
    return comment + "\n" + "\n\n".join(block(b) for b in blocks) + "\n"
