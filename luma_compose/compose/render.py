"""Render: splice the routing of each x-luma service into the original text.

Nothing is dumped. Each change is a small edit at a known position of the
source (new lines after a mapping's last entry, a scalar replaced, a flow
collection extended), so comments, key order, quoting, anchors, merge keys,
tags and ``$`` expressions everywhere else stay byte-for-byte, the diff a
reviewer sees is the smallest possible, and rendering the output again finds
nothing to change.

The same plan is applied to the plain data (``expected_data``), which is what
the compose-spec schema validates and what a re-read of the output must equal.
"""

from __future__ import annotations

import copy
from typing import Any

from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from .. import contract
from ..errors import LumaError, Problem
from .rules import is_ours, label_items
from .source import DataBuilder, Source, is_map, is_null, is_scalar, is_seq, own_get, scalar_value
from . import splice
from .splice import Editor, flow, key_col, scalar
from .xluma import MarkedService, services_node


class RenderRefused(LumaError):
    """Render cannot write this file safely; ``problem`` says where and why."""

    def __init__(self, problem: Problem):
        super().__init__(problem.message, problem.hint)
        self.problem = problem


class Renderer:
    def __init__(self, src: Source, data: dict, project: str, routes: list[MarkedService], keep_name: bool,
                 extends_networks: frozenset[str] = frozenset()):
        #: routed services that take `networks` through `extends`
        self.extends_networks = extends_networks
        self.keep_name = keep_name
        self.flow_added: dict[int, int] = {}
        self.src = src
        self.data = data
        self.project = project
        self.routes = routes
        self.ed = Editor(src)
        svcs = services_node(src)
        root_col = key_col(src.root)
        #: the file's indentation step, taken from `services:`; each service's own step is used inside it
        self.file_step = max(1, key_col(svcs) - root_col) if svcs is not None and svcs.value and not svcs.flow_style \
            else 2
        self.step = self.file_step

    def run(self) -> tuple[str, dict]:
        token = splice.QUOTE.set(splice.prefer_quote(self.src.text))
        try:
            return self._run()
        finally:
            splice.QUOTE.reset(token)

    def _run(self) -> tuple[str, dict]:
        expected = copy.copy(self.data)
        expected["services"] = dict(self.data["services"])
        self._name(expected)
        for r in self.routes:
            svc = dict(expected["services"][r.service])
            expected["services"][r.service] = svc
            self.step = _child_step(r.node, r.key_node, self.file_step)
            self._labels(r, svc)
            self._networks(r, svc)
        if self.routes:
            _, nets = own_get(self.src.root, "networks")
            k_nets = own_get(self.src.root, "networks")[0]
            self.step = _child_step(nets, k_nets, self.file_step) if is_map(nets) else self.file_step
            self._top_network(expected)
        self._keep_final_block_scalar()
        return self.ed.apply(), expected

    def _keep_final_block_scalar(self) -> None:
        """A file that ends, without a line break, in a `|`/`>` block scalar: that scalar has no final
        line break. Lines added after it would give it one (clip chomping keeps a single final
        break), so it gets strip chomping (`|-`), which keeps its value exactly."""
        text = self.src.text
        if text.endswith("\n") or not any(e[0] >= len(text) for e in self.ed.edits):
            return
        node = self.src.root
        while isinstance(node, (MappingNode, SequenceNode)) and node.value:
            node = node.value[-1][1] if isinstance(node, MappingNode) else node.value[-1]
        if is_scalar(node) and node.style in ("|", ">"):
            start = self.ed.off(node.start_mark)
            header = text[start:text.find("\n", start)]
            if "-" not in header and "+" not in header:
                indicator = start + header.index(node.style) + 1
                self.ed.replace(indicator, indicator, "-")

    # -------------------------------------------------------------- name

    def _name(self, expected: dict) -> None:
        root = self.src.root
        k, v = own_get(root, "name")
        expected["name"] = self.project
        if v is not None:
            if not self.keep_name:
                self._replace_value(k, v, scalar(self.project))
            return
        first = root.value[0][0]
        if root.flow_style:  # `{services: ...}`: the name goes first, inside the braces
            pos = self.ed.off(first.start_mark)
            self.ed.replace(pos, pos, "name: " + scalar(self.project, True) + ", ")
            return
        pos = self.src.offset(first.start_mark.line, 0)
        self.ed.insert_lines(pos, [" " * first.start_mark.column + "name: " + scalar(self.project)])

    def _replace_value(self, k: Node, v: Node, text: str) -> None:
        start, end = self.ed.node_span(v, self.ed.off(k.end_mark))
        if is_null(v) and start == end:
            self.ed.replace(start, end, " " + text)
        elif is_scalar(v) and v.style in ("|", ">"):
            self.ed.replace(start, end, text + self.ed.nl)
        else:
            self.ed.replace(start, end, text)

    # ------------------------------------------------------------ labels

    def _labels(self, r: MarkedService, svc: dict) -> None:
        want = r.labels(self.project)
        k, v = own_get(r.node, "labels")
        if k is None or is_null(v) or self._is_alias(k, v):  # an alias: write our own copy, leave the anchor
            inherited = svc.get("labels")  # through a merge key, if any
            kept = [(a, b) for a, b in label_items(inherited) if not a.startswith(contract.LABEL_PREFIX)]
            if isinstance(inherited, list):
                new_list = [f"{a}={b}" if b is not None else a for a, b in kept] + [f"{a}={b}" for a, b in want.items()]
                svc["labels"] = new_list
                body = [f"- {scalar(x)}" for x in new_list]
            else:
                new = {a: b for a, b in kept}
                new.update(want)
                svc["labels"] = new
                body = [f"{scalar(str(a))}: {flow(b) if not isinstance(b, str) else scalar(b)}" for a, b in new.items()]
            self._add_block_key(r.node, "labels", body, k, svc["labels"])
            return
        data = svc.get("labels")
        if isinstance(data, dict):
            new = {a: b for a, b in data.items() if not str(a).startswith(contract.LABEL_PREFIX)}
            new.update(want)
            svc["labels"] = new
        else:
            items = [x for x in map(str, data or []) if not x.startswith(contract.LABEL_PREFIX)]
            svc["labels"] = items + [f"{a}={b}" for a, b in want.items()]
        if is_map(v):
            self._edit_label_map(v, want)
        elif is_seq(v):
            self._edit_label_list(v, want)

    def _edit_label_map(self, node: MappingNode, want: dict[str, str]) -> None:
        if node.flow_style:
            entries = []
            present = {}
            for k, v in node.value:
                key = str(k.value)
                if key.startswith(contract.LABEL_PREFIX):
                    present[key] = v
                    continue
                entries.append(self._span(k, v))
            if all(key in present and scalar_value(present[key]) == val for key, val in want.items()) \
                    and set(present) == set(want):
                return
            entries += [f"{scalar(a, True)}: {scalar(b, True)}" for a, b in want.items()]
            self._replace_flow(node, "{" + ", ".join(entries) + "}")
            return
        present: dict[str, tuple[Node, Node]] = {}
        for k, v in node.value:
            key = str(k.value)
            if key.startswith(contract.LABEL_PREFIX):
                if key in want:
                    present[key] = (k, v)
                else:
                    self._delete_entry(node, k, v)
        for key, (k, v) in present.items():
            if not (is_scalar(v) and scalar_value(v) == want[key] and v.tag == "tag:yaml.org,2002:str"):
                self._replace_value(k, v, scalar(want[key]))
        missing = [f"{scalar(a)}: {scalar(b)}" for a, b in want.items() if a not in present]
        if missing:
            self._append_entries(node, missing)

    def _edit_label_list(self, node: SequenceNode, want: dict[str, str]) -> None:
        wanted = [f"{a}={b}" for a, b in want.items()]
        if node.flow_style:
            keep, mine = [], []
            pos = self.ed.off(node.start_mark) + 1
            for item in node.value:
                start, end = self.ed.node_span(item, pos)
                text = self.src.text[start:end]
                value = str(scalar_value(item)) if is_scalar(item) else ""
                (mine if value.startswith(contract.LABEL_PREFIX) else keep).append((value, text))
                pos = end
            if [v for v, _ in mine] == wanted:
                return
            self._replace_flow(node, "[" + ", ".join([t for _, t in keep] + [scalar(w, True) for w in wanted]) + "]")
            return
        present = {}
        for item in node.value:
            value = str(scalar_value(item)) if is_scalar(item) else ""
            if not value.startswith(contract.LABEL_PREFIX):
                continue
            key = value.split("=", 1)[0]
            if key in want and key not in present:
                present[key] = item
                if value != f"{key}={want[key]}":
                    start, end = self.ed.off(item.start_mark), self.ed.off(item.end_mark)
                    self.ed.replace(start, end, scalar(f"{key}={want[key]}"))
            else:
                self._delete_item(item)
        missing = [f"{a}={b}" for a, b in want.items() if a not in present]
        if missing:
            first = node.value[0]
            line_start = self.src.offset(first.start_mark.line, 0)
            prefix = self.src.text[line_start:self.ed.off(first.start_mark)]
            if not prefix.strip().startswith("-"):
                prefix = " " * (first.start_mark.column - 2) + "- "
            pos = self.ed.line_after(self.ed.node_end(node, self.ed.off(node.start_mark)))
            pos = self.ed.past_deeper_comments(pos, len(prefix) - len(prefix.lstrip(" -")))
            self.ed.insert_lines(pos, [prefix + scalar(m) for m in missing])

    # ---------------------------------------------------------- networks

    def _networks(self, r: MarkedService, svc: dict) -> None:
        alias = contract.alias(self.project, r.service)
        want = {"aliases": [alias]}
        k, v = own_get(r.node, "networks")
        if k is None or is_null(v) or self._is_alias(k, v):
            inherited = svc.get("networks")
            nets: dict = {}
            if isinstance(inherited, list):
                nets = {str(n): None for n in inherited}
            elif isinstance(inherited, dict):
                nets = {n: c for n, c in inherited.items() if n != contract.NETWORK_KEY}
            elif r.service not in self.extends_networks:
                nets = {"default": None}
            # else: Compose merges the networks it takes through `extends` with these; `default` would be new
            nets[contract.NETWORK_KEY] = want
            svc["networks"] = nets
            body = []
            for n, cfg in nets.items():
                if n == contract.NETWORK_KEY:
                    body += [f"{contract.NETWORK_KEY}:", " " * self.step + f"aliases: [{scalar(alias, True)}]"]
                else:
                    body.append(f"{scalar(str(n))}:" + ("" if cfg is None else " " + flow(cfg)))
            self._add_block_key(r.node, "networks", body, k, nets)
            return
        data = svc.get("networks")
        if isinstance(data, list):
            nets = {str(n): None for n in data}
            nets[contract.NETWORK_KEY] = want
            svc["networks"] = nets
            self._list_to_map(k, v, alias)
            return
        if not isinstance(data, dict):
            raise RenderRefused(self.src.problem(v, f"service '{r.service}': cannot read its networks",
                                                 "write networks as a list of names or a mapping", "networks"))
        nets = dict(data)
        nets[contract.NETWORK_KEY] = want
        svc["networks"] = nets
        lk, lv = own_get(v, contract.NETWORK_KEY) if is_map(v) else (None, None)
        current = DataBuilder(self.src).build(lv) if lk is not None else None
        if lk is not None:
            if current == want:
                return
            if v.flow_style:
                entries = [self._span(a, b) for a, b in v.value if a is not lk]
                self._replace_flow(v, "{" + ", ".join(entries + [f"{contract.NETWORK_KEY}: {flow(want)}"]) + "}")
            else:
                self._replace_value(lk, lv, flow(want))
            return
        if v.flow_style:
            self._flow_insert(v, f"{contract.NETWORK_KEY}: {flow(want)}")
        else:
            self._append_entries(v, [f"{contract.NETWORK_KEY}:", " " * self.step + f"aliases: [{scalar(alias, True)}]"])

    def _list_to_map(self, k: Node, v: SequenceNode, alias: str) -> None:
        names = [str(scalar_value(i)) if is_scalar(i) else None for i in v.value]
        if None in names:
            raise RenderRefused(self.src.problem(v, "a network list entry is not a name",
                                                 "write networks as a list of names or a mapping", "networks"))
        luma = f"{contract.NETWORK_KEY}: {{aliases: [{scalar(alias, True)}]}}"
        if v.flow_style or self.ed.off(v.start_mark) < self.ed.off(k.end_mark):
            body = ", ".join(f"{scalar(n, True)}: null" for n in names if n != contract.NETWORK_KEY)
            text = "{" + (body + ", " if body else "") + luma + "}"
            if v.flow_style:
                self._replace_flow(v, text)
            else:
                self._replace_value(k, v, text)
            return
        col = k.start_mark.column + self.step
        for item in v.value:
            line_start = self.src.offset(item.start_mark.line, 0)
            end = self.ed.off(item.end_mark)
            name = str(scalar_value(item))
            if name == contract.NETWORK_KEY:
                self._delete_item(item)
                continue
            self.ed.replace(line_start, end, " " * col + self.src.text[self.ed.off(item.start_mark):end] + ":")
        pos = self.ed.line_after(self.ed.node_end(v, self.ed.off(v.start_mark)))
        pos = self.ed.past_deeper_comments(pos, col)
        self.ed.insert_lines(pos, [" " * col + f"{contract.NETWORK_KEY}:",
                                   " " * (col + self.step) + f"aliases: [{scalar(alias, True)}]"])

    def _top_network(self, expected: dict) -> None:
        root = self.src.root
        k, v = own_get(root, "networks")
        body = [f"{contract.NETWORK_KEY}:", " " * self.step + "labels:",
                " " * 2 * self.step + f"{contract.NETWORK_OWNER_LABEL}: {scalar('true')}"]
        nets = dict(expected.get("networks") or {})
        if contract.NETWORK_KEY in nets and is_ours(nets[contract.NETWORK_KEY]):
            return
        nets[contract.NETWORK_KEY] = {"labels": {contract.NETWORK_OWNER_LABEL: "true"}}
        expected["networks"] = nets
        if k is None or is_null(v):
            self._add_block_key(root, "networks", body, k, {contract.NETWORK_KEY: nets[contract.NETWORK_KEY]})
        elif is_map(v) and v.flow_style:
            self._flow_insert(v, f"{contract.NETWORK_KEY}: {flow(nets[contract.NETWORK_KEY])}")
        elif is_map(v):
            self._append_entries(v, body)
        else:
            raise RenderRefused(self.src.problem(v, "top-level `networks` is not a mapping",
                                                 "write top-level networks as a mapping of names", "networks"))

    # ------------------------------------------------------------ shared

    def _is_alias(self, k: Node, v: Node) -> bool:
        """Is ``v`` written here as ``*alias`` (its anchor is earlier in the file)?"""
        return self.ed.off(v.start_mark) < self.ed.off(k.end_mark)

    def _span(self, k: Node, v: Node) -> str:
        return self.src.text[self.ed.off(k.start_mark):self.ed.node_span(v, self.ed.off(k.end_mark))[1]]

    def _flow_insert(self, node: Node, entry: str) -> None:
        """Add ``entry`` at the end of a flow collection, before its closing bracket."""
        end = self.ed.off(node.end_mark) - 1
        text = self.src.text
        i = end - 1
        while i >= 0 and text[i] in " \t\r\n":
            i -= 1
        added = self.flow_added.get(id(node), 0)
        self.flow_added[id(node)] = added + 1
        sep = ", " if added or (node.value and text[i] != ",") else ""
        self.ed.replace(end, end, sep + entry)

    def _replace_flow(self, node: Node, text: str) -> None:
        start = self.ed.off(node.start_mark)
        end = self.ed.off(node.end_mark)
        # keep an anchor or tag written before the collection
        head = self.src.text[start:end]
        bracket = min(i for i in (head.find("{"), head.find("[")) if i >= 0)
        self.ed.replace(start + bracket, end, text)

    def _add_block_key(self, mapping: MappingNode, key: str, body: list[str], existing_key: Node | None,
                       value: Any) -> None:
        """Give ``mapping`` the key ``key``: ``body`` lines at its indentation, or ``value`` in flow style."""
        if mapping.flow_style:
            if existing_key is not None:
                _, v = own_get(mapping, key)
                self._replace_value(existing_key, v, flow(value))
            else:
                self._flow_insert(mapping, f"{key}: {flow(value)}")
            return
        if existing_key is not None:  # `key:` or `key: null`: put the body under it
            _, v = own_get(mapping, key)
            start, end = self.ed.node_span(v, self.ed.off(existing_key.end_mark))
            if end > start:
                text = self.src.text
                while start > 0 and text[start - 1] in " \t":  # no trailing space after `key:`
                    start -= 1
                self.ed.replace(start, end, "")
            col = existing_key.start_mark.column + self.step
            pos = self.ed.past_deeper_comments(self.ed.line_after(end), existing_key.start_mark.column)
            self.ed.insert_lines(pos, [" " * col + line for line in body])
            return
        col = key_col(mapping)
        lines = [" " * col + f"{key}:"] + [" " * (col + self.step) + line for line in body]
        pos = self.ed.after_entries(mapping, mapping.value[0][0])
        self.ed.insert_lines(pos, lines)

    def _append_entries(self, mapping: MappingNode, lines: list[str]) -> None:
        col = key_col(mapping)
        pos = self.ed.after_entries(mapping, mapping.value[0][0])
        self.ed.insert_lines(pos, [" " * col + line for line in lines])

    def _delete_entry(self, mapping: MappingNode, k: Node, v: Node) -> None:
        start = self.src.offset(k.start_mark.line, 0)
        end = self.ed.line_after(self.ed.node_end(v, self.ed.off(k.end_mark)))
        self.ed.replace(start, end, "")

    def _delete_item(self, item: Node) -> None:
        start = self.src.offset(item.start_mark.line, 0)
        end = self.ed.line_after(self.ed.off(item.end_mark))
        self.ed.replace(start, end, "")


def _child_step(mapping: Node | None, key: Node | None, default: int) -> int:
    """How far a block mapping's entries are indented past its key (the file's own step there)."""
    if isinstance(mapping, MappingNode) and mapping.value and not mapping.flow_style and key is not None \
            and mapping.start_mark.line > key.start_mark.line:
        step = key_col(mapping) - key.start_mark.column
        if step > 0:
            return step
    return default


def render(src: Source, data: dict, project: str, routes: list[MarkedService], keep_name: bool,
           extends_networks: frozenset[str] = frozenset()) -> tuple[str, dict]:
    """The rendered text and the data it must read back as.

    ``keep_name``: the file's own ``name:`` already gives ``project``; leave it as written.
    ``extends_networks``: routed services that take their networks through ``extends``.
    """
    return Renderer(src, data, project, routes, keep_name, extends_networks).run()
