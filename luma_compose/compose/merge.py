"""Several compose files merged in Python, by the compose-spec merge rules (pure: no Docker here).

The rules are compose-go's (loader/override): mappings merge recursively, the later file's scalar wins,
a null keeps the earlier value, sequences append; ``command``, ``entrypoint`` and ``healthcheck.test``
are replaced; ``environment``, ``labels`` and the like merge as KEY=VALUE pairs whether written as a list
or a mapping; ``depends_on`` and a service's ``networks`` merge as mappings (a list is read as one);
``volumes`` are unique by target (the later entry takes the earlier one's place), ``ports`` and ``expose``
drop exact repeats. ``${VAR}`` is kept as written and short syntaxes stay as the files wrote them (so
``${DATA:-./data}:/srv`` is still a bind mount once Compose interpolates it); relative paths stay relative to
the project directory, as Compose reads every file's paths.

:func:`merge_texts` gives the merged file's text, or None for what it does not handle (``include``,
``extends``, YAML tags such as ``!reset``, keys with rules of their own such as ``logging``): the caller then
lets Compose merge. The result is never trusted by itself: the engine reads the render of it back through
Compose and compares with Compose's model of the files (:mod:`.readback`), falling back to Compose's merge.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable

_NAMED = ("services", "networks", "volumes", "secrets", "configs")


class Unsupported(Exception):
    """A construct this merge does not handle: Compose merges these files."""


class Reset:
    """``!reset``: the attribute is removed from the merge."""


class Override:
    """``!override value``: the value replaces the merged one instead of merging with it."""

    def __init__(self, value: Any):
        self.value = value


def _loader():
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import SafeConstructor
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
    from ruamel.yaml.resolver import VersionedResolver

    class Constructor(SafeConstructor):
        pass

    class Resolver(VersionedResolver):
        """Resolves each distinct plain scalar once per file (keys repeat: most of a file's resolving time)."""

        def resolve(self, kind, value, implicit):
            if kind is not ScalarNode or not implicit[0] or implicit[1]:
                return super().resolve(kind, value, implicit)
            cache = self.__dict__.setdefault("_plain_tags", {})
            tag = cache.get(value)
            if tag is None:
                tag = cache[value] = super().resolve(kind, value, implicit)
            return tag

    def reset(constructor, node):
        return Reset()

    def override(constructor, node):
        if isinstance(node, MappingNode):
            return Override(constructor.construct_mapping(node, deep=True))
        if isinstance(node, SequenceNode):
            return Override(constructor.construct_sequence(node, deep=True))
        return Override(node.value if node.style else YAML(typ="safe").load(node.value))

    Constructor.add_constructor("!reset", reset)
    Constructor.add_constructor("!override", override)
    yaml = YAML(typ="safe")
    yaml.Constructor, yaml.Resolver = Constructor, Resolver
    return yaml


def load(text: str) -> dict:
    try:
        data = _loader().load(text)
    except Exception as e:  # noqa: BLE001 - other tags, bad YAML: Compose says what it makes of them
        raise Unsupported(f"not read here: {type(e).__name__}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise Unsupported("the file is not a mapping")
    if "include" in data:
        raise Unsupported("include")
    services = data.get("services")
    if services is not None and not isinstance(services, dict):
        raise Unsupported("services is not a mapping")
    for svc in (services or {}).values():
        if isinstance(svc, dict) and "extends" in svc:
            raise Unsupported("extends")
    return data


def _plain(value: Any, path: tuple) -> Any:
    """``value`` without tags (a value no earlier file has: ``!reset`` entries dropped, ``!override`` unwrapped)."""
    if isinstance(value, Override):
        return _plain(value.value, path)
    if isinstance(value, dict):
        return {k: _plain(v, (*path, k)) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        if any(isinstance(v, (Reset, Override)) for v in value):
            raise Unsupported(f"{'.'.join(map(str, path))}: a tag in a sequence")
        return [_plain(v, path) for v in value]
    if isinstance(value, Reset):
        raise Unsupported(f"{'.'.join(map(str, path))}: !reset")
    return value


def merge(files: list[dict]) -> dict:
    """The merge of parsed files (later files override earlier ones); raises Unsupported."""
    merged: dict = {}
    for data in files:
        merged = _merge((), merged, data)
    return merged


def merge_texts(texts: list[str]) -> str | None:
    """The merged text of several compose files, or None when Compose must merge them."""
    try:
        return dump(merge([load(t) for t in texts]))
    except Unsupported:
        return None


# ---- the rules

def _pattern(path: tuple) -> tuple:
    if len(path) >= 2 and path[0] in _NAMED:
        return (path[0], "*", *path[2:])
    return path


def _merge(path: tuple, base: Any, over: Any) -> Any:
    if isinstance(over, Override):
        return _plain(over.value, path)
    rule = _RULES.get(_pattern(path))
    if rule is not None:
        return rule(path, base, _plain(over, path))
    return _generic(path, base, over)


def _generic(path: tuple, base: Any, over: Any) -> Any:
    if over is None:
        return base
    if base is None:
        return _plain(over, path)
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            if isinstance(v, Reset):
                out.pop(k, None)
            else:
                out[k] = _merge((*path, k), base[k], v) if k in base else _plain(v, (*path, k))
        return out
    if isinstance(base, list) and isinstance(over, list):
        return base + _plain(over, path)
    if isinstance(base, (dict, list)) or isinstance(over, (dict, list)):
        raise Unsupported(f"{'.'.join(map(str, path))}: a {type(base).__name__} and a {type(over).__name__}")
    return over


def _override(path: tuple, base: Any, over: Any) -> Any:
    return base if over is None else over


def _unsupported(path: tuple, base: Any, over: Any) -> Any:
    raise Unsupported(".".join(map(str, path)))


def _as_mapping(value: Any, path: tuple) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        out = {}
        for entry in value:
            if not isinstance(entry, str):
                raise Unsupported(".".join(map(str, path)))
            key, eq, val = entry.partition("=")
            out[key] = val if eq else None
        return out
    raise Unsupported(".".join(map(str, path)))


def _key_values(path: tuple, base: Any, over: Any) -> Any:
    """environment, labels...: KEY=VALUE pairs, the later value wins (as a mapping unless both are lists)."""
    if over is None or base is None:
        return base if over is None else over
    if isinstance(base, list) and isinstance(over, list) and all(isinstance(e, str) for e in base + over):
        keys = {e.partition("=")[0]: e for e in base + over}
        return list(keys.values())
    return {**_as_mapping(base, path), **_as_mapping(over, path)}


def _names_mapping(value: Any, path: tuple, default: Any) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and all(isinstance(e, str) and "$" not in e for e in value):
        return {e: default() for e in value}
    raise Unsupported(".".join(map(str, path)))


def _depends_on(path: tuple, base: Any, over: Any) -> Any:
    if over is None or base is None:
        return base if over is None else over
    if isinstance(base, list) and isinstance(over, list):
        return _unique(base + over, lambda e: e)

    def started():
        return {"condition": "service_started"}

    return _generic(path, _names_mapping(base, path, started), _names_mapping(over, path, started))


def _networks(path: tuple, base: Any, over: Any) -> Any:
    if over is None or base is None:
        return base if over is None else over
    if isinstance(base, list) and isinstance(over, list):
        return _unique(base + over, lambda e: e)
    return _generic(path, _names_mapping(base, path, lambda: None), _names_mapping(over, path, lambda: None))


def _build(path: tuple, base: Any, over: Any) -> Any:
    def as_map(v):
        return {"context": v} if isinstance(v, str) else v

    if over is None or base is None:
        return base if over is None else over
    return _generic(path, as_map(base), as_map(over))


def _sequence(path: tuple, base: Any, over: Any) -> Any:
    if over is None or base is None:
        return base if over is None else over
    as_list = [v if isinstance(v, list) else [v] for v in (base, over)]
    return as_list[0] + as_list[1]


def _unique(entries: list, key: Callable[[Any], Any]) -> list:
    """Unique by ``key``: the first entry's place, the last entry's value (compose-go's EnforceUnicity)."""
    out: list = []
    where: dict = {}
    for entry in entries:
        k = key(entry)
        if k in where:
            out[where[k]] = entry
        else:
            where[k] = len(out)
            out.append(entry)
    return out


def _hashable(entry: Any) -> Any:
    return json.dumps(entry, sort_keys=True, default=str) if isinstance(entry, (dict, list)) else entry


def _repeats(path: tuple, base: Any, over: Any) -> Any:
    if over is None or base is None:
        return base if over is None else over
    if not isinstance(base, list) or not isinstance(over, list):
        raise Unsupported(".".join(map(str, path)))
    return _unique(base + over, _hashable)


_VARIABLE = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*")


def volume_target(entry: Any) -> str:
    """The container path of a service's volume entry (short or long syntax); raises Unsupported."""
    if isinstance(entry, dict):
        target = entry.get("target")
    elif isinstance(entry, str):
        parts = _VARIABLE.sub("\0", entry).split(":")
        target = parts[0] if len(parts) == 1 else parts[1]
    else:
        target = None
    if not isinstance(target, str) or "$" in target or "\0" in target or not target:
        raise Unsupported("a volume whose target is not written out")
    return target.rstrip("/") or "/"


def _volumes(path: tuple, base: Any, over: Any) -> Any:
    if over is None or base is None:
        return base if over is None else over
    if not isinstance(base, list) or not isinstance(over, list):
        raise Unsupported(".".join(map(str, path)))
    return _unique(base + over, volume_target)


_RULES: dict[tuple, Callable[[tuple, Any, Any], Any]] = {
    ("include",): _unsupported,
    ("services", "*", "extends"): _unsupported,
    ("services", "*", "command"): _override,
    ("services", "*", "entrypoint"): _override,
    ("services", "*", "healthcheck", "test"): _override,
    ("services", "*", "depends_on"): _depends_on,
    ("services", "*", "networks"): _networks,
    ("services", "*", "build"): _build,
    ("services", "*", "volumes"): _volumes,
    ("services", "*", "ports"): _repeats,
    ("services", "*", "expose"): _repeats,
    **{("services", "*", k): _key_values for k in ("environment", "labels", "annotations", "sysctls")},
    **{("services", "*", "build", k): _key_values for k in ("args", "labels", "additional_contexts")},
    ("services", "*", "deploy", "labels"): _key_values,
    **{(top, "*", "labels"): _key_values for top in ("networks", "volumes")},
    **{("services", "*", k): _sequence for k in ("dns", "dns_opt", "dns_search", "tmpfs", "env_file")},
    # rules of their own, not written here: Compose merges files that set these twice
    **{("services", "*", k): _unsupported for k in ("logging", "ulimits", "extra_hosts", "models", "secrets",
                                                     "configs", "devices", "label_file", "gpus", "post_start",
                                                     "pre_stop", "develop", "provider")},
    ("services", "*", "build", "extra_hosts"): _unsupported,
    ("networks", "*", "ipam"): _unsupported,
}


# ---- the text: block YAML; a string is plain when it reads as that string in YAML 1.1 and 1.2 alike, else
# double-quoted (JSON's escapes are YAML's)

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@+-]*(:[A-Za-z0-9_./@+-]+)*\Z")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n"}


def _string(s: str) -> str:
    if _PLAIN.match(s) and s.lower() not in _RESERVED:
        return s
    if any(c in s for c in "\u2028\u2029\x85") or any(ord(c) < 32 and c not in "\t\n\r" for c in s):
        raise Unsupported("a string with control characters")
    return json.dumps(s, ensure_ascii=False)


def _key(k: Any) -> str:
    if isinstance(k, bool) or not isinstance(k, (str, int)):
        raise Unsupported(f"a key {k!r}")
    return _string(str(k))


def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and math.isfinite(v):
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    raise Unsupported(f"a value {type(v).__name__}")


def _emit(value: Any, pad: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{_key(k)}:")
                _emit(v, pad + "  ", out)
            else:
                out.append(f"{pad}{_key(k)}: {_inline(v)}")
    else:
        for v in value:
            if isinstance(v, (dict, list)) and v:
                inner: list[str] = []
                _emit(v, pad + "  ", inner)
                out.append(f"{pad}- {inner[0].lstrip()}")
                out.extend(inner[1:])
            else:
                out.append(f"{pad}- {_inline(v)}")


def _inline(v: Any) -> str:
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return _scalar(v)


def dump(data: dict) -> str:
    out: list[str] = []
    _emit(data, "", out)
    return "\n".join(out) + "\n"
