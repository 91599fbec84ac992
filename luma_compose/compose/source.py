"""YAML source with positions: parse once, fast, and keep every node's place.

The parser is ruamel.yaml's composer (its C parser from ruamel.yaml.clib when
installed), which gives a node tree whose nodes carry start and end marks.
Render never dumps that tree: it splices a few new lines into the original
text (see render.py), so everything it does not change stays byte-for-byte.

Data for the validators is built from the same nodes here, applying YAML merge
keys (``<<``) and Compose's ``!reset`` / ``!override`` tags the way Compose does.
"""

from __future__ import annotations

import io
from typing import Any, Iterator

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver

from ..errors import Problem

MERGE_TAG = "tag:yaml.org,2002:merge"
RESET_TAG = "!reset"

Path = tuple  # of str | int


class Source:
    """One compose file: its name (as shown in messages), text and parsed root."""

    __slots__ = ("name", "text", "root", "_line_starts")

    def __init__(self, name: str, text: str, root: Node | None = None):
        self.name = name
        self.text = text
        self.root = root
        self._line_starts: list[int] = []

    def offset(self, line: int, col: int) -> int:
        """Character offset of a 0-based (line, column) mark."""
        if not self._line_starts:
            starts = [0]
            find = self.text.find
            i = find("\n")
            while i != -1:
                starts.append(i + 1)
                i = find("\n", i + 1)
            self._line_starts = starts
        if line >= len(self._line_starts):
            return len(self.text)
        return self._line_starts[line] + col

    def problem(self, node: Node | None, message: str, hint: str = "", rule: str = "") -> Problem:
        if node is None:
            return Problem(self.name, 0, 0, message, hint, rule)
        m = node.start_mark
        return Problem(self.name, m.line + 1, m.column + 1, message, hint, rule)


class _Resolver(VersionedResolver):
    """ruamel's resolver with the YAML version fixed at 1.2, which is what it resolves with under the C
    parser anyway (it then finds no scanner to ask): asking costs an exception per scalar, about a
    fifth of a parse, and every render parses twice (its input, and its output to verify it)."""

    processing_version = (1, 2)  # type: ignore[assignment]


def parse(name: str, text: str) -> tuple[Source, list[Problem]]:
    """Parse ``text``; on a YAML error return the problem with its position."""
    src = Source(name, text)
    yaml = YAML(typ="safe")
    yaml.Resolver = _Resolver
    try:
        src.root = yaml.compose(io.StringIO(text))
    except UnicodeError as e:  # text handed to the API with lone surrogates (undecodable bytes)
        return src, [Problem(name, 0, 0, f"the file is not valid Unicode text: {e.reason}",
                             "give a UTF-8 compose file", "yaml")]
    except RecursionError:
        return src, [Problem(name, 0, 0, "the YAML nests too deeply to be read",
                             "a compose file nests a few levels; flatten this structure", "yaml")]
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = " ".join(x for x in (e.context, e.problem) if x) or "invalid YAML"
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        return src, [Problem(name, line, col, f"YAML syntax error: {msg}",
                             "fix the YAML syntax at this position (indentation, quotes, colons)", "yaml")]
    except YAMLError as e:  # pragma: no cover - unmarked errors are rare
        return src, [Problem(name, 0, 0, f"YAML error: {e}", "fix the YAML syntax", "yaml")]
    return src, []


#: Deepest nesting read: compose files nest a few levels; hundreds would exhaust the recursion of the
#: validators (thousands, the parser's: caught in ``parse``).
MAX_DEPTH = 100
#: Most values the aliases of one file may expand to (an "alias bomb", each level referencing the
#: previous one many times, would otherwise grow without bound); the file's own text is not counted.
MAX_VALUES = 200_000


# ---------------------------------------------------------------- node helpers

def tag_of(node: Node) -> str | None:
    """``node.tag``, without the property chain on the hot path (a large file has 100,000s of nodes)."""
    t = node.ctag
    if t is None:
        return None
    try:
        return t._trval  # ruamel caches the resolved tag here once it was computed
    except AttributeError:
        return t.trval


def is_map(node: Any) -> bool:
    return isinstance(node, MappingNode)


def is_seq(node: Any) -> bool:
    return isinstance(node, SequenceNode)


def is_scalar(node: Any) -> bool:
    return isinstance(node, ScalarNode)


def is_null(node: Any) -> bool:
    return node is None or (isinstance(node, ScalarNode) and tag_of(node) == "tag:yaml.org,2002:null")


def own_items(node: MappingNode) -> Iterator[tuple[ScalarNode, Node]]:
    """The mapping's own key/value pairs, merge keys excluded."""
    for k, v in node.value:
        if tag_of(k) != MERGE_TAG:
            yield k, v


def own_get(node: Node | None, key: str) -> tuple[ScalarNode | None, Node | None]:
    """(key node, value node) of ``key`` written in this mapping itself (not merged)."""
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if tag_of(k) != MERGE_TAG and isinstance(k, ScalarNode) and k.value == key:
                return k, v
    return None, None


def merge_sources(node: MappingNode) -> list[MappingNode]:
    """The mappings merged into ``node`` with ``<<``, in precedence order."""
    out: list[MappingNode] = []
    for k, v in node.value:
        if tag_of(k) == MERGE_TAG:
            if isinstance(v, MappingNode):
                out.append(v)
            elif isinstance(v, SequenceNode):
                out.extend(x for x in v.value if isinstance(x, MappingNode))
    return out


def merged_get(node: Node | None, key: str, _seen: frozenset = frozenset()) -> Node | None:
    """The value ``key`` takes in ``node`` after merge keys (own keys win)."""
    if not isinstance(node, MappingNode) or id(node) in _seen:
        return None
    _, v = own_get(node, key)
    if v is not None:
        return v
    for m in merge_sources(node):
        v = merged_get(m, key, _seen | {id(node)})
        if v is not None:
            return v
    return None


def scalar_value(node: ScalarNode) -> Any:
    """The value of a scalar under the YAML 1.2 core schema (as Compose reads it)."""
    tag, v = tag_of(node), node.value
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return v.lower() == "true"
    if tag == "tag:yaml.org,2002:int":
        s = v.replace("_", "")
        try:
            return int(s, 0)
        except ValueError:
            try:
                return int(s, 10)
            except ValueError:
                return v
    if tag == "tag:yaml.org,2002:float":
        s = v.lower().replace("_", "")
        if s in (".inf", "+.inf"):
            return float("inf")
        if s == "-.inf":
            return float("-inf")
        if s == ".nan":
            return float("nan")
        try:
            return float(s)
        except ValueError:
            return v
    return v


class DataBuilder:
    """Builds plain Python data from nodes, as Compose would see it.

    Merge keys are applied (own keys win, earlier merge sources win over later
    ones), ``!reset`` drops the key, ``!override`` replaces it. Duplicate keys
    are reported, as Compose refuses them too.
    """

    def __init__(self, src: Source):
        self.src = src
        self.problems: list[Problem] = []
        self._open: set[int] = set()
        self._recursion_reported = False
        self._budget = MAX_VALUES
        self._depth = 0
        self._built: set[int] = set()
        self._expanding = 0
        #: the data is incomplete: the file is too deep or expands too much (no other check makes sense)
        self.exhausted = False

    def build(self, node: Node | None) -> Any:
        if node is None:
            return None
        if self._expanding:
            self._budget -= 1
        if self._budget < 0 or self._depth >= MAX_DEPTH:
            if not self.exhausted:
                self.exhausted = True
                self.problems.append(self.src.problem(
                    node, f"the aliases of this file expand to more than {MAX_VALUES:,} values (an alias bomb?)",
                    "a compose file uses a few aliases; remove the aliases that repeat other aliases", "yaml")
                    if self._budget < 0 else self.src.problem(
                    node, f"the YAML nests deeper than {MAX_DEPTH} levels here",
                    "a compose file nests a few levels; flatten this structure", "yaml"))
            return None
        if isinstance(node, ScalarNode):
            return scalar_value(node)
        if id(node) in self._open:  # an alias inside its own anchor: YAML allows it, Compose cannot use it
            if not self._recursion_reported:
                self._recursion_reported = True
                self.problems.append(self.src.problem(
                    node, "this anchor contains an alias to itself (a recursive structure)",
                    "an alias (*name) must not appear inside the node its anchor (&name) marks", "yaml"))
            return None
        self._open.add(id(node))
        self._depth += 1
        again = id(node) in self._built  # reached again through an alias: its values count
        self._built.add(id(node))
        self._expanding += again
        try:
            if isinstance(node, SequenceNode):
                return [self.build(x) for x in node.value]
            return self._mapping(node, report=True)
        finally:
            self._expanding -= again
            self._depth -= 1
            self._open.discard(id(node))

    def _mapping(self, node: MappingNode, report: bool) -> dict:
        out: dict = {}
        for k, v in own_items(node):
            key = scalar_value(k) if isinstance(k, ScalarNode) else None
            if not isinstance(key, str):
                # Compose refuses them too ("non-string key"); the data keeps a string in its place
                if report:
                    shown = "null" if key is None else (k.value if isinstance(k, ScalarNode) else "a collection")
                    self.problems.append(self.src.problem(
                        k, f"mapping key {shown!s} is not a string (Compose refuses non-string keys)",
                        "quote the key (\"1\": ...), or give the key a name", "yaml"))
                key = "" if key is None else (k.value if isinstance(k, ScalarNode) else f"<key at line {k.start_mark.line + 1}>")
            if key in out:
                if report:
                    self.problems.append(self.src.problem(
                        k, f"duplicate key '{key}' in this mapping",
                        "remove one of the two entries: YAML and Compose allow each key once", "yaml"))
                continue
            if tag_of(v) == RESET_TAG:
                out[key] = _RESET
                continue
            out[key] = self.build(v)
        for m in merge_sources(node):
            # merged mappings are reported where they are written, not again here
            if id(m) in self._open:
                self.build(m)  # reports the recursion
                continue
            self._open.add(id(m))
            again = id(m) in self._built
            self._built.add(id(m))
            self._expanding += again
            try:
                merged = self._mapping(m, report=False)
            finally:
                self._expanding -= again
                self._open.discard(id(m))
            for key, val in merged.items():
                out.setdefault(key, val)
        return {k: v for k, v in out.items() if v is not _RESET}


_RESET = object()


def shared_nodes(root: Node | None) -> set[int]:
    """ids of the collection nodes that appear in more than one place (anchored and aliased)."""
    seen: set[int] = set()
    shared: set[int] = set()
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, ScalarNode):
            continue
        if id(node) in seen:
            shared.add(id(node))
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for k, v in node.value:
                stack.append(k)
                stack.append(v)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return shared


def locate(src: Source, path: Path) -> Node | None:
    """The node at ``path`` (keys and indexes) following merges; the nearest parent if absent."""
    node = src.root
    for part in path:
        nxt = None
        if isinstance(node, MappingNode):
            nxt = merged_get(node, str(part))
        elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            nxt = node.value[part]
        if nxt is None:
            return node
        node = nxt
    return node


def locate_key(src: Source, path: Path) -> Node | None:
    """The key node of the last element of ``path`` when it is a mapping key, else ``locate``."""
    if path:
        parent = locate(src, path[:-1])
        if isinstance(parent, MappingNode):
            k, _ = own_get(parent, str(path[-1]))
            if k is not None:
                return k
    return locate(src, path)
