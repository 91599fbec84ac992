"""Schema checks: our ``x-luma`` schema and the official Compose Specification schema.

Two libraries, two jobs:

* ``fastjsonschema`` compiles a schema to Python code once (cached on disk), and
  answers "valid or not" in milliseconds even for a 2,000-service file. It is the
  fast gate every render and check goes through.
* ``jsonschema`` is the reference implementation. It runs only when the gate
  says no (or for the x-luma blocks of a file that has problems), and reports
  every error with its path, which we turn into ``file:line:col`` problems.

fastjsonschema speaks draft 7 and does not know ``unevaluatedProperties``, which
the compose-spec schema uses to reject unknown service keys. ``gate_schema``
rewrites those places into the equivalent ``additionalProperties`` form for the
gate; tests check gate and reference agree.
"""

from __future__ import annotations

import importlib.util
import json
import marshal
import os
import re
import sys
from functools import lru_cache
from typing import Any, Callable, NamedTuple

from ..fsutil import write_atomic

_GATE_VERSION = "5"  # bump when gate_schema or the generated code's preamble changes

# The generated code imports its exception classes from fastjsonschema, which
# would import the whole code generator on every run; it gets these instead.
_FJS_IMPORT = "from fastjsonschema import JsonSchemaValueException, JsonSchemaValuesException"
_FJS_LOCAL = """
class JsonSchemaValueException(ValueError):
    def __init__(self, message, value=None, name=None, definition=None, rule=None):
        super().__init__(message)
        self.message, self.value, self.name, self.definition, self.rule = message, value, name, definition, rule


class JsonSchemaValuesException(ValueError):
    def __init__(self, errors=None, *args, **kwargs):
        super().__init__(str(errors))
        self.errors = errors
"""


class SchemaError(NamedTuple):
    path: tuple  # where in the instance
    message: str
    hint: str
    key_error: bool = False  # the path names a key that should not be there
    validator: str = ""  # the JSON Schema keyword that failed


def _schemas_dir() -> str:
    # the package's own JSON schemas (the repository's top-level schemas/ links here)
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_schemas")


def xluma_schema_path() -> str:
    return os.path.join(_schemas_dir(), "x-luma.schema.json")


def compose_spec_path() -> str:
    """The official compose-spec schema, as vendored by the check-jsonschema package (read as data)."""
    spec = importlib.util.find_spec("check_jsonschema")
    if spec is None or not spec.submodule_search_locations:
        from ..errors import UnavailableError

        raise UnavailableError("the check-jsonschema package (carrier of the compose-spec schema) is not installed",
                               "reinstall luma-compose with its dependencies: pip install luma-compose")
    return os.path.join(list(spec.submodule_search_locations)[0], "builtin_schemas", "vendor", "compose-spec.json")


def _crc(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode())


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


# ------------------------------------------------------------------ the gate

def keys_of(node: dict, defs: dict, what: str, _seen: set | None = None) -> set:
    """The keys (``properties``) or key patterns (``patternProperties``) a mapping's schema knows,
    following its ``$ref`` and ``allOf`` parts (what ``unevaluatedProperties`` takes into account)."""
    ref = node.get("$ref")
    if isinstance(ref, str) and "/" in ref:
        node = defs.get(ref.rsplit("/", 1)[1], node)
    seen = set() if _seen is None else _seen
    if id(node) in seen:
        return set()
    seen.add(id(node))
    keys = set(node.get(what, {}))
    for sub in node.get("allOf", []):
        keys |= keys_of(sub, defs, what, seen)
    return keys


def gate_schema(schema: dict) -> dict:
    """A draft-7 equivalent of ``schema`` for fastjsonschema (see module doc)."""
    schema = json.loads(json.dumps(schema))  # a deep copy
    defs = schema.get("$defs", {})

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("unevaluatedProperties") is False:
                props, patterns = keys_of(node, defs, "properties"), keys_of(node, defs, "patternProperties")
                node.pop("unevaluatedProperties")
                own = node.setdefault("properties", {})
                for p in props:
                    own.setdefault(p, {})
                pp = node.setdefault("patternProperties", {})
                for p in patterns:
                    pp.setdefault(p, {})
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema.pop("$id", None)  # the generated function is then named `validate`
    return schema


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "luma-compose")


@lru_cache(maxsize=None)
def _gate(kind: str) -> Callable[[Any], Any]:
    """The compiled fast validator for ``kind`` ('compose' or 'xluma').

    fastjsonschema's generated code is compiled once and kept on disk as a
    marshalled code object (independent of PYTHONDONTWRITEBYTECODE).
    """
    path = compose_spec_path() if kind == "compose" else xluma_schema_path()
    # keyed on the schema file's identity (no need to read it when the cache is warm)
    st = os.stat(path)
    ident = f"{path}|{st.st_size}|{st.st_mtime_ns}|{_GATE_VERSION}|{sys.version}"
    key = format(_crc(ident), "08x") + format(len(ident), "x")
    cache = os.path.join(_cache_dir(), f"gate-{kind}-{key}.bin")
    code = None
    try:
        with open(cache, "rb") as fh:
            code = marshal.load(fh)
    except (OSError, EOFError, ValueError, TypeError):
        pass
    if code is None:
        import fastjsonschema

        # use_default=False: a validator must never write the schema's defaults into the data it checks;
        # detailed_exceptions=False: the gate only says yes or no (jsonschema explains), 1/4 of the code
        source = fastjsonschema.compile_to_code(gate_schema(json.loads(_read(path))), use_default=False,
                                                detailed_exceptions=False)
        if _FJS_IMPORT not in source:  # pragma: no cover - a fastjsonschema that changed its preamble
            raise RuntimeError("unexpected code from fastjsonschema: its import line changed")
        code = compile(source.replace(_FJS_IMPORT, _FJS_LOCAL), f"<gate {kind}>", "exec")
        try:
            os.makedirs(_cache_dir(), exist_ok=True)
            write_atomic(cache, marshal.dumps(code))
        except OSError:  # no writable cache: it is compiled again next time
            pass
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - code generated by fastjsonschema from the schema file
    return namespace["validate"]


def gate_ok(kind: str, instance: Any) -> bool:
    validate = _gate(kind)
    try:
        validate(instance)
        return True
    except Exception:  # JsonSchemaValueException, or anything the generated code trips on
        return False


# ------------------------------------------------------------- the reference

@lru_cache(maxsize=None)
def _reference(kind: str):
    import jsonschema

    path = compose_spec_path() if kind == "compose" else xluma_schema_path()
    schema = json.loads(_read(path))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema), schema


def errors(kind: str, instance: Any, fast: bool = True) -> list[SchemaError]:
    """Every schema error of ``instance``; [] quickly when the gate passes."""
    if fast and gate_ok(kind, instance):
        return []
    validator, schema = _reference(kind)
    out: list[SchemaError] = []
    for e in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        out.extend(_describe(e, schema))
    # "'hosts' is required" next to an unknown 'hots' that suggests it says the same thing twice
    suggested = {(x.path[:-1], x.hint.split("'")[1]) for x in out if x.key_error and x.hint.startswith("did you")}
    return [x for x in out if not (x.message.startswith("'") and x.message.endswith("is a required property")
                                   and (x.path, x.message.split("'")[1]) in suggested)]




def _allowed_keys(e, schema: dict, what: str = "properties") -> list[str]:
    """The keys (``properties``) or key patterns (``patternProperties``) a mapping's schema allows,
    including those of its ``allOf`` parts (which ``unevaluatedProperties`` takes into account)."""
    return sorted(keys_of(e.schema, schema.get("$defs", schema.get("definitions", {})), what))


def _describe(e, schema: dict) -> list[SchemaError]:
    path = tuple(e.absolute_path)
    if e.validator in ("additionalProperties", "unevaluatedProperties"):
        instance = e.instance if isinstance(e.instance, dict) else {}
        allowed = _allowed_keys(e, schema)
        patterns = _allowed_keys(e, schema, "patternProperties")
        # only keys no part of the schema knows: when another error (say an interpolated `${VAR}` in a
        # typed field) fails a part, unevaluatedProperties calls every key of the mapping unexpected
        bad = [k for k in instance if k not in allowed and not any(re.search(p, str(k)) for p in patterns)]
        out = []
        # keys the schema knows are reported by their own errors, if any: only unknown keys here
        for k in bad:
            if not allowed and patterns:  # a mapping of names (services, networks, ...): the name is wrong
                out.append(SchemaError(path + (k,), f"'{k}' is not a valid name here",
                                       "names may use only " + _pattern_words(patterns), key_error=True))
                continue
            import difflib

            near = difflib.get_close_matches(str(k), allowed, n=1, cutoff=0.6)
            hint = f"did you mean '{near[0]}'?" if near else (
                f"allowed keys: {', '.join(allowed)}" if len(allowed) <= 12 else
                "remove it, or prefix it with x- to keep it as an extension")
            out.append(SchemaError(path + (k,), f"unknown key '{k}'", hint, key_error=True))
        return out
    if e.validator in ("oneOf", "anyOf") and e.context:
        # the branch that got furthest: skip "wrong type" mismatches of the other branches
        fitting = [c for c in e.context if c.validator != "type"] or list(e.context)
        best = max(fitting, key=lambda c: len(c.absolute_path))
        if best.validator in ("oneOf", "anyOf", "additionalProperties", "unevaluatedProperties"):
            return _describe(best, schema)
        return [SchemaError(tuple(best.absolute_path), _shorten(best.message), _hint_for(best),
                            validator=str(best.validator))]
    return [SchemaError(path, _shorten(e.message), _hint_for(e), validator=str(e.validator))]


def _pattern_words(patterns: list[str]) -> str:
    named = [p for p in patterns if not p.startswith("^x-")]
    if named == ["^[a-zA-Z0-9._-]+$"]:
        return "ASCII letters, digits, '.', '_' and '-'"
    return "names matching " + " or ".join(named or patterns)


def _hint_for(e) -> str:
    v = e.validator
    if v == "type":
        want = e.validator_value if isinstance(e.validator_value, str) else " or ".join(e.validator_value)
        return f"use a value of type {want}"
    if v == "required":
        return "add the missing key"
    if v in ("minimum", "maximum"):
        return f"use a number {'>=' if v == 'minimum' else '<='} {e.validator_value}"
    if v == "enum":
        return "use one of: " + ", ".join(map(str, e.validator_value))
    if v == "pattern":
        return "the value must match the pattern " + str(e.validator_value)
    if v == "uniqueItems":
        return "remove the repeated entries"
    return ""


def _shorten(msg: str, limit: int = 240) -> str:
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."
