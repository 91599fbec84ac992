"""Text splicing: edits at known positions of a YAML source, applied together.

Generic: it knows YAML positions (ruamel marks) and how to write a scalar or a flow
node that reads back as given, nothing of Compose or luma. Render builds on it.
"""

from __future__ import annotations

import json
import re
from contextvars import ContextVar
from typing import Any

from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from .source import Source, is_scalar

_ALIAS = re.compile(r"(?:[ \t\r\n:?-]|#[^\n]*)*\*([^\s,\[\]{}]+)")
_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9_/][A-Za-z0-9_./@:+=,-]*$")
#: Plain scalars YAML (1.1 or 1.2) would read as something else than a string.
_KEYWORDS = frozenset(("~", "null", "true", "false", "yes", "no", "on", "off", "y", "n"))


#: The quote character new quoted scalars use: the file's own majority, set by the Renderer for the
#: duration of one render (a context variable: renders in other threads keep their own).
QUOTE: ContextVar[str] = ContextVar("luma_quote", default='"')


def prefer_quote(text: str) -> str:
    """The quote style a file uses most for values (`key: '...'` or `- '...'`), double when even."""
    single = len(re.findall(r"(?::|^\s*-) '", text, re.M))
    double = len(re.findall(r'(?::|^\s*-) "', text, re.M))
    return "'" if single > double else '"'


def scalar(value: str, flow: bool = False) -> str:
    """A YAML scalar that reads back as the string ``value``: plain when safe, else double-quoted.

    Anything that starts like a number (digits, sign, dot: ints, floats, dates, times,
    ``.inf``) is quoted too: always correct, and cheaper than recognising each form.
    """
    if (_PLAIN_SAFE.match(value) and value.lower() not in _KEYWORDS and not value[0].isdigit()
            and not (flow and (":" in value or "," in value))):
        return value
    if QUOTE.get() == "'" and value.isprintable():
        return "'" + value.replace("'", "''") + "'"
    return json.dumps(value, ensure_ascii=False)


def flow(value: Any) -> str:
    """Plain data as a YAML flow node (JSON is YAML; plain strings stay readable)."""
    if isinstance(value, str):
        return scalar(value, flow=True)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{flow(str(k))}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if value is None:
        return "null"
    return json.dumps(value)


class Editor:
    """Edits of one source text, applied together at the end."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.edits: list[tuple[int, int, str, int]] = []  # start, end, text, rank (see apply)
        self.nl = "\r\n" if "\r\n" in self.src.text else "\n"

    def off(self, mark) -> int:
        return self.src.offset(mark.line, mark.column)

    def replace(self, start: int, end: int, text: str) -> None:
        self.edits.append((start, end, text, 0))

    def insert_lines(self, pos: int, lines: list[str]) -> None:
        """New lines at the start of a line. Of several blocks inserted at one place, the more indented
        goes first: it closes a deeper collection (a service's `networks`) that ends there, before a
        shallower one (the service itself) gets a new key."""
        indent = len(lines[0]) - len(lines[0].lstrip(" ")) if lines else 0
        self.edits.append((pos, pos, "".join(line + self.nl for line in lines), -indent))

    def apply(self) -> str:
        text = self.src.text
        edits = self.edits
        if text and not text.endswith("\n") and any(e[0] >= len(text) for e in edits):
            # the last line has no line break: one, before everything added after it
            edits = edits + [(len(text), len(text), self.nl, -(1 << 30))]
        out, last = [], len(text)
        # from the end backwards; of two inserts at one place, the deeper one first, then the one asked for
        # first (see insert_lines)
        order = sorted(range(len(edits)), key=lambda i: (edits[i][0], edits[i][1], edits[i][3], i), reverse=True)
        for start, end, new, _ in (edits[i] for i in order):
            if end > last:
                raise AssertionError("overlapping edits")  # a bug, never user input
            out.append(text[end:last])
            out.append(new)
            last = start
        out.append(text[:last])
        return "".join(reversed(out))

    # ---- positions

    def node_end(self, node: Node, after: int) -> int:
        """Offset just past the text of ``node`` as written where the text at ``after`` continues.

        A node reached through an alias (``*name``) has the marks of its anchor,
        earlier in the file; its text here is the alias token.
        """
        start = self.off(node.start_mark)
        if start < after:
            m = _ALIAS.match(self.src.text, after)
            if m is None:  # pragma: no cover - the parser saw an alias here
                raise AssertionError("alias expected")
            return m.end()
        if isinstance(node, MappingNode) and not node.flow_style and node.value:
            k, v = node.value[-1]
            return self.node_end(v, self.node_end(k, after))
        if isinstance(node, SequenceNode) and not node.flow_style and node.value:
            pos = after
            for item in node.value:
                pos = self.node_end(item, pos)
            return pos
        end = self.off(node.end_mark)
        if is_scalar(node) and node.style in ("|", ">"):
            # a block scalar's marks take in the blank lines after it; unless it keeps them (`|+`),
            # they are not its text, and what follows belongs after its last line, before them
            header = self.src.text[start:self.src.text.find("\n", start)]
            if "+" not in header:
                text = self.src.text
                while end > start and text[end - 1] in "\r\n":
                    prev = text.rfind("\n", start, end - 1)
                    if prev == -1 or text[prev + 1:end].strip():
                        break
                    end = prev + 1
        return end

    def node_span(self, node: Node, after: int) -> tuple[int, int]:
        """(start, end) of the text of ``node`` where it is written after offset ``after``."""
        start = self.off(node.start_mark)
        if start < after:
            m = _ALIAS.match(self.src.text, after)
            return m.start(1) - 1, m.end()
        return start, self.node_end(node, after)

    def line_after(self, pos: int) -> int:
        """Start of the line after the one holding ``pos - 1`` (or ``pos`` if already at a line start)."""
        text = self.src.text
        if pos > 0 and text[pos - 1] == "\n":
            return pos
        i = text.find("\n", pos)
        return len(text) if i == -1 else i + 1

    def after_entries(self, mapping: MappingNode, key: Node, col: int | None = None) -> int:
        """Where new lines at column ``col`` go at the end of a block collection: after its last content
        line, and after the comment lines below it that are indented deeper than ``col`` (they belong to
        the block that ends there: a commented-out `# FOO: "1"` under `environment:` stays there)."""
        pos = self.line_after(self.node_end(mapping, self.off(mapping.start_mark)))
        return self.past_deeper_comments(pos, key_col(mapping) if col is None else col)

    def past_deeper_comments(self, pos: int, col: int) -> int:
        text = self.src.text
        scan = pos
        while scan < len(text):
            nl = text.find("\n", scan)
            end = len(text) if nl == -1 else nl + 1
            line = text[scan:end]
            body = line.lstrip(" \t")
            if not body.strip():  # blank: part of the block only if a deeper comment follows
                scan = end
                continue
            if body.startswith("#") and len(line) - len(body) > col:
                scan = pos = end
                continue
            break
        return pos


def key_col(node: MappingNode) -> int:
    return node.value[0][0].start_mark.column
