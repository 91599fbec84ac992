"""check: every rule reports what, where (file:line:col) and how to fix (pure: no Docker)."""

from __future__ import annotations

import textwrap

import pytest

from luma_compose import api
from luma_compose.compose import inputs as naming
from luma_compose.errors import UsageError


def problems(text: str, project: str | None = "p"):
    r = api.render_text("c.yaml", textwrap.dedent(text), project, "/nonexistent/dir", {})
    assert r.text is None if r.problems else True
    return r.problems


def only(text: str, project: str | None = "p"):
    ps = problems(text, project)
    assert len(ps) == 1, [(p.message, p.line) for p in ps]
    return ps[0]


def test_unknown_xluma_key_has_did_you_mean_and_position():
    # the missing 'hosts' is not reported again beside the near miss 'hots'
    p = only("""\
    services:
      web:
        image: x
        x-luma:
          hots: [a.example.com]
          port: 80
    """)
    assert (p.line, p.col) == (5, 7) and "did you mean 'hosts'" in p.hint
    ps = problems("services:\n  web:\n    image: x\n    x-luma:\n      hots: a.example.com\n      hosts: b.example.com\n"
                  "      port: 80\n")
    assert [(x.line, x.col) for x in ps] == [(5, 7)]
    assert "hots" in ps[0].message and "did you mean 'hosts'" in ps[0].hint


@pytest.mark.parametrize("host,word", [("https://a.example.com", "scheme"), ("a.example.com/app", "path"),
                                        ("a.example.com:8080", "port"), ("bad_host!", "not a valid DNS name")])
def test_bad_hosts_say_why(host, word):
    p = only(f"services:\n  web:\n    image: x\n    x-luma:\n      hosts: ['{host}']\n      port: 80\n")
    assert word in p.message and p.hint and (p.line, p.col) == (5, 15)
    single = only(f"services:\n  web:\n    image: x\n    x-luma:\n      hosts: '{host}'\n      port: 80\n")
    assert word in single.message and (single.line, single.col) == (5, 14)


@pytest.mark.parametrize("port", [0, 65536, '"80"'])
def test_port_range_and_type(port):
    p = only(f"services:\n  web:\n    image: x\n    x-luma: {{hosts: a.example.com, port: {port}}}\n")
    assert "port" in p.message and p.line == 4


def test_missing_hosts():
    p = only("services:\n  web:\n    image: x\n    x-luma: {port: 80}\n")
    assert "hosts" in p.message and p.line == 4


def test_network_mode_on_routed_service():
    p = only("services:\n  web:\n    image: x\n    network_mode: host\n    x-luma: {hosts: a.example.com, port: 80}\n")
    assert "network_mode" in p.message and (p.line, p.col) == (4, 5)


def test_container_name_with_replicas():
    p = only("services:\n  web:\n    image: x\n    container_name: w\n    deploy: {replicas: 2}\n")
    assert "container_name" in p.message and p.line == 4


def test_same_host_twice():
    p = only("""\
    services:
      a:
        image: x
        x-luma: {hosts: [one.example.com], port: 80}
      b:
        image: x
        x-luma: {hosts: [One.example.com], port: 80}
    """)
    assert "one.example.com" in p.message and p.line == 7


def test_alias_colliding_with_a_service_name_or_alias():
    p = only("""\
    services:
      web:
        image: x
        x-luma: {hosts: a.example.com, port: 80}
      p-web:
        image: x
    """)
    assert "p-web" in p.message and p.line == 2
    p = only("""\
    services:
      web:
        image: x
        x-luma: {hosts: a.example.com, port: 80}
      db:
        image: x
        networks: {default: {aliases: [p-web]}}
    """)
    assert "alias of service 'db'" in p.message


def test_empty_services_and_not_a_mapping():
    assert "empty" in only("services: {}\n").message
    assert "mapping" in only("- a\n- b\n").message


def test_yaml_syntax_error_position():
    p = only("services:\n  web:\n    image: [x\n  db: {}\n")
    assert p.rule == "yaml" and p.line >= 3 and p.col > 0


def test_duplicate_key():
    p = only("services:\n  web:\n    image: x\n    image: y\n")
    assert "duplicate key 'image'" in p.message and p.line == 4


def test_compose_spec_unknown_service_key_with_hint():
    p = only("services:\n  web:\n    imag: x\n")
    assert p.rule == "compose-spec" and "imag" in p.message and "image" in p.hint and (p.line, p.col) == (3, 5)


def test_compose_spec_type_error_located():
    p = only("services:\n  web:\n    image: x\n    ports: 80\n")
    assert p.rule == "compose-spec" and p.line == 4


def test_interpolated_values_are_left_to_compose():
    assert problems("services:\n  web:\n    image: x\n    deploy: {replicas: '${N:-2}'}\n") == []


def test_luma_network_not_ours():
    p = only("services:\n  web:\n    image: x\n    x-luma: {hosts: a.example.com, port: 80}\nnetworks:\n  luma: {}\n")
    assert "luma" in p.message and p.line == 6


def test_stale_luma_labels_on_unrouted_service():
    p = only("services:\n  web:\n    image: x\n    labels: {luma.managed: 'true'}\n")
    assert "luma.managed" in p.message and "x-luma" in p.hint


def test_unrouted_service_on_ingress_network():
    p = only("services:\n  web:\n    image: x\n    networks: [luma]\n")
    assert "ingress" in p.message


def test_inherited_xluma_does_not_route():
    r = api.render_text("c.yaml", "x-a: &a\n  x-luma: {hosts: a.example.com, port: 80}\nservices:\n"
                                  "  w:\n    <<: *a\n    image: x\n", "p", ".", {})
    assert r.ok and not r.routes and "luma.managed" not in r.text


# ------------------------------------------------------------------ naming

def test_project_name_precedence_and_normalization(tmp_path):
    d = tmp_path / "My.Proj_ect"
    d.mkdir()
    assert naming.resolve(None, None, str(d), {}) == ("myproj_ect", "dir")
    assert naming.resolve(None, "-Foo Bar.x", str(d), {}) == ("foobarx", "file")
    assert naming.resolve(None, "Foo", str(d), {"COMPOSE_PROJECT_NAME": "envname"}) == ("envname", "env")
    assert naming.resolve("cli", "Foo", str(d), {"COMPOSE_PROJECT_NAME": "envname"}) == ("cli", "-p")
    assert naming.resolve(None, "${N:-Hello}", str(d), {}) == ("hello", "file")
    (d / ".env").write_text("N=fromdotenv\n")
    assert naming.resolve(None, "${N:-Hello}", str(d), {}) == ("fromdotenv", "file")
    with pytest.raises(UsageError, match="invalid project name"):
        naming.resolve("Foo", None, str(d), {})
    with pytest.raises(UsageError, match="invalid project name"):
        naming.resolve(None, None, str(d), {"COMPOSE_PROJECT_NAME": "-x"})
    empty = tmp_path / "_--"
    empty.mkdir()
    with pytest.raises(UsageError, match="must not be empty"):
        naming.resolve(None, "$$$", str(empty), {})


def test_interpolation_forms():
    v = {"A": "a", "E": ""}
    assert naming.interpolate("${A}-${B:-b}-${E:-e}-${E-e}-${A:+x}-${B+y}-$$-$A", v) == "a-b-e--x--$-a"


@pytest.mark.parametrize("text", ["a: &x\n  b: *x\nservices: {a: {image: x}}\n",
                                  "x: &x\n  <<: *x\nservices: {a: {image: x}}\n",
                                  "services: &s\n  a: {image: x, x-luma: {hosts: a.example.com, port: 80}}\n  b: *s\n"])
def test_recursive_anchors_are_reported_not_crashed_on(text):
    ps = problems(text)
    assert ps and "recursive" in ps[0].message and ps[0].line == 1


def test_services_not_a_mapping():
    p = only("services: web\n")
    assert "mapping" in p.message and p.line == 1


def test_invalid_service_name_says_which_characters():
    p = only("services:\n  wéb:\n    image: x\n")
    assert "'wéb' is not a valid name" in p.message and "ASCII letters" in p.hint and (p.line, p.col) == (2, 3)


@pytest.mark.parametrize("text,what", [
    ("services:\n  web:\n    image: x\n    labels: oops\n    x-luma: {hosts: a.example.com, port: 80}\n", "labels"),
    ("services:\n  web:\n    image: x\n    networks: 3\n    x-luma: {hosts: a.example.com, port: 80}\n", "networks"),
    ("services:\n  web:\n    image: x\n    x-luma: {hosts: a.example.com, port: 80}\nnetworks: [a]\n", "networks"),
])
def test_shapes_render_relies_on_are_checked_first(text, what):
    ps = problems(text)
    assert any(what in p.message and "must be a mapping" in p.message for p in ps)


@pytest.mark.parametrize("xluma, words", [
    ("{hosts: a.example.com, port: 80, health: '/up{x}'}", "health path"),
    ("{hosts: a.example.com, port: 80, health: '/up?a b'}", "health"),
    ("{hosts: '{http.request.host}', port: 80}", "not a valid DNS name"),
])
def test_x_luma_values_the_proxy_would_ignore_are_errors(xluma, words):
    """check applies the proxy's own validator (luma_compose/validate.py): nothing it accepts is ignored later."""
    text = f"services:\n  web:\n    image: x\n    x-luma: {xluma}\n"
    problems = api.render_text("c.yaml", text, project="p").problems
    assert problems and any(words in p.message for p in problems), [p.message for p in problems]
    assert all(p.line == 4 for p in problems)
