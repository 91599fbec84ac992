"""render: what it writes, what it keeps, and when it refuses (pure: no Docker)."""

from __future__ import annotations

import io
import textwrap

import pytest
from ruamel.yaml import YAML

from luma_compose import api, contract

safe = YAML(typ="safe")
for _tag in ("!reset", "!override"):  # Compose's own tags: read them as plain values here
    safe.constructor.add_constructor(
        _tag, lambda c, n: c.construct_sequence(n) if n.id == "sequence" else
        (c.construct_mapping(n) if n.id == "mapping" else c.construct_scalar(n)))


def load(text: str):
    return safe.load(io.StringIO(text))


def render(text: str, project: str | None = "p", **kw) -> api.Result:
    return api.render_text("compose.yaml", textwrap.dedent(text), project, "/nonexistent/dir", {}, **kw)


def ok(text: str, project: str | None = "p") -> str:
    r = render(text, project)
    assert r.ok, [p.message for p in r.problems]
    again = api.render_text("out.yaml", r.text, project, "/nonexistent/dir", {})
    assert again.ok and again.text == r.text, "render must be idempotent"
    return r.text


def labels_of(svc: dict) -> dict:
    lab = svc.get("labels") or {}
    if isinstance(lab, list):
        return dict(x.split("=", 1) for x in lab)
    return {k: str(v) for k, v in lab.items()}


GMAIL = """\
services:
  web:
    image: example/web:1.2   # the app
    x-luma:
      hosts: [mail.example.com, www.mail.example.com]
      port: 3000
  worker:
    image: example/web:1.2
"""


def test_routed_service_gets_labels_network_alias_and_keeps_default():
    out = load(ok(GMAIL, "gmail"))
    web = out["services"]["web"]
    assert labels_of(web) == {
        "luma.managed": "true", "luma.project": "gmail", "luma.service": "web",
        "luma.hosts": "mail.example.com,www.mail.example.com", "luma.port": "3000",
        "luma.target": "gmail-web:3000", "luma.health.path": "/up", "luma.network": "gmail_luma",
    }
    assert web["networks"] == {"default": None, "luma": {"aliases": ["gmail-web"]}}
    assert out["networks"]["luma"]["labels"][contract.NETWORK_OWNER_LABEL] == "true"
    assert out["name"] == "gmail"
    assert out["services"]["worker"] == {"image": "example/web:1.2"}
    assert web["x-luma"]["port"] == 3000


def test_unrouted_file_only_gains_name_line():
    text = "# top comment\nservices:\n  a:\n    image: x  # keep me\n    command: echo $$HOME ${X:-y}\n"
    out = ok(text, "demo")
    assert out == "# top comment\nname: demo\n" + text.split("\n", 1)[1]


def test_existing_name_kept_when_it_gives_the_project_and_replaced_under_p():
    text = "name: demo\nservices:\n  a:\n    image: x\n"
    assert ok(text, None) == text
    assert ok(text, "other").startswith("name: other\n")


def test_an_interpolated_name_is_pinned_to_its_value():
    # labels carry the project name: `up` with another STACK must not run under another name
    text = "name: ${STACK:-app}\nservices:\n  a:\n    image: x\n"
    assert ok(text, None) == "name: app\nservices:\n  a:\n    image: x\n"
    r = api.render_text("t.yaml", text, None, "/nonexistent/dir", {"STACK": "Prod"})
    assert r.ok and r.text.startswith("name: prod\n")


def test_comments_quotes_anchors_tags_and_order_survive_byte_for_byte():
    text = """\
    x-common: &common
      restart: unless-stopped   # always
    services:
      web:
        <<: *common
        image: 'quoted:1'
        environment:
          A: "${A:-1}"
          B: $$literal
        ports: !reset []
        x-luma: {hosts: a.example.com, port: 80}
      db:
        <<: *common
        image: "db"
    x-other: {keep: me}
    """
    out = ok(text)
    original = textwrap.dedent(text).splitlines()
    rendered = out.splitlines()
    # every original line is still there, in the same order
    it = iter(rendered)
    assert all(any(line == r for r in it) for line in original)
    data = load(out)
    assert data["services"]["db"] == {"restart": "unless-stopped", "image": "db"}


def test_list_labels_stay_a_list_and_map_labels_a_map():
    out = load(ok("""\
    services:
      a:
        image: x
        labels:
          - com.example=1
        x-luma: {hosts: a.example.com, port: 80}
      b:
        image: x
        labels: {com.example: "2"}
        x-luma: {hosts: b.example.com, port: 81}
    """))
    a, b = out["services"]["a"], out["services"]["b"]
    assert isinstance(a["labels"], list) and "com.example=1" in a["labels"]
    assert labels_of(a)["luma.target"] == "p-a:80"
    assert isinstance(b["labels"], dict) and b["labels"]["com.example"] == "2"
    assert labels_of(b)["luma.port"] == "81"


@pytest.mark.parametrize("networks", [
    "networks: [front, back]",
    "networks:\n      - front\n      - back",
    "networks:\n    - front   # public side\n    - back",
    "networks: {front: {}, back: null}",
    "networks:\n      front:\n      back:\n        aliases: [b]",
])
def test_networks_become_a_map_with_nothing_lost(networks):
    text = f"""\
services:
  a:
    image: x
    {networks}
    x-luma: {{hosts: a.example.com, port: 80}}
networks:
  front:
  back:
"""
    out = ok(text)
    nets = load(out)["services"]["a"]["networks"]
    assert set(nets) == {"front", "back", "luma"}
    assert nets["luma"] == {"aliases": ["p-a"]}
    if "aliases: [b]" in networks:
        assert nets["back"] == {"aliases": ["b"]}
    if "# public side" in networks:
        assert "# public side" in out


def test_inherited_labels_and_networks_are_copied_not_dropped():
    out = load(ok("""\
    x-app: &app
      image: x
      labels: {team: core}
      networks: [back]
    services:
      web:
        <<: *app
        x-luma: {hosts: a.example.com, port: 80}
      worker:
        <<: *app
    networks:
      back:
    """))
    web, worker = out["services"]["web"], out["services"]["worker"]
    assert labels_of(web)["team"] == "core" and labels_of(web)["luma.service"] == "web"
    assert set(web["networks"]) == {"back", "luma"}
    assert worker["labels"] == {"team": "core"} and worker["networks"] == ["back"]


def test_service_inheriting_a_routed_mapping_is_refused_with_names():
    r = render("""\
    services:
      web: &app
        image: x
        x-luma: {hosts: a.example.com, port: 80}
      worker:
        <<: *app
        command: work
    """)
    assert not r.ok and r.text is None
    msg = " ".join(p.message + p.hint for p in r.problems)
    assert "worker" in msg and "web" in msg and "x-" in msg


def test_port_from_single_expose_and_error_without():
    out = load(ok("services:\n  a:\n    image: x\n    expose: ['8080']\n    x-luma: {hosts: a.example.com}\n"))
    assert labels_of(out["services"]["a"])["luma.port"] == "8080"
    r = render("services:\n  a:\n    image: x\n    expose: [80, 81]\n    x-luma: {hosts: a.example.com}\n")
    assert not r.ok and "port" in r.problems[0].message and r.problems[0].line == 2


def test_rerender_updates_stale_values_and_removes_foreign_luma_labels():
    text = ok(GMAIL, "gmail")
    edited = text.replace("port: 3000", "port: 4000").replace("luma.network: gmail_luma",
                                                             "luma.network: gmail_luma\n      luma.extra: x")
    out = ok(edited, "gmail")
    web = load(out)["services"]["web"]
    assert labels_of(web)["luma.port"] == "4000" and labels_of(web)["luma.target"] == "gmail-web:4000"
    assert "luma.extra" not in labels_of(web)


def test_crlf_and_missing_final_newline():
    text = "services:\r\n  a:\r\n    image: x\r\n    x-luma: {hosts: a.example.com, port: 80}"
    out = ok(text)
    assert "\r\n" in out and "\n" not in out.replace("\r\n", "")
    assert load(out)["services"]["a"]["networks"]["luma"] == {"aliases": ["p-a"]}


def test_four_space_indentation_is_followed():
    out = ok("services:\n    a:\n        image: x\n        x-luma:\n            hosts: a.example.com\n"
             "            port: 80\n")
    assert "\n        labels:\n            luma.managed: \"true\"\n" in out


def test_empty_labels_and_networks_keys_are_filled():
    out = load(ok("services:\n  a:\n    image: x\n    labels:\n    networks:\n"
                  "    x-luma: {hosts: a.example.com, port: 80}\n"))
    a = out["services"]["a"]
    assert labels_of(a)["luma.service"] == "a" and a["networks"]["luma"] == {"aliases": ["p-a"]}


def test_user_networks_section_gains_only_luma():
    out = ok("services:\n  a:\n    image: x\n    x-luma: {hosts: a.example.com, port: 80}\n"
             "networks:\n  # mine\n  other:\n    driver: bridge\n")
    data = load(out)
    assert set(data["networks"]) == {"other", "luma"} and data["networks"]["other"] == {"driver": "bridge"}
    assert "  # mine\n" in out


def test_output_passes_compose_spec_and_names_are_pinned():
    r = render(GMAIL, None)
    assert r.ok and r.project == "dir"  # basename of /nonexistent/dir
    assert load(r.text)["name"] == "dir"


def test_shared_labels_anchor_is_copied_not_edited():
    out = ok("""\
    x-labels: &common
      team: core
    services:
      web:
        image: x
        labels: *common
        x-luma: {hosts: a.example.com, port: 80}
      db:
        image: x
        labels: *common
    """)
    assert out.startswith("name: p\nx-labels: &common\n  team: core\nservices:\n")  # the anchor is untouched
    data = load(out)
    assert data["services"]["db"]["labels"] == {"team": "core"} and data["x-labels"] == {"team": "core"}
    assert labels_of(data["services"]["web"])["team"] == "core"
    assert labels_of(data["services"]["web"])["luma.service"] == "web"


def test_anchor_used_only_by_the_routed_service_is_fine():
    out = load(ok("""\
    x-labels: &common
      team: core
    services:
      web:
        image: x
        labels: *common
        x-luma: {hosts: a.example.com, port: 80}
    """))
    assert labels_of(out["services"]["web"])["team"] == "core"


def test_flow_style_services_and_top_level_get_flow_additions():
    out = ok("services:\n  web: {image: x, x-luma: {hosts: a.example.com, port: 80}}  # one-liner\n"
             "  db: {image: pg}\n")
    assert "  db: {image: pg}\n" in out and "# one-liner" in out
    web = load(out)["services"]["web"]
    assert labels_of(web)["luma.target"] == "p-web:80" and web["networks"]["luma"] == {"aliases": ["p-web"]}
    out = ok("{services: {web: {image: x, x-luma: {hosts: a.example.com, port: 80}}}, networks: {}}\n")
    data = load(out)
    assert data["name"] == "p" and data["networks"]["luma"]["labels"]["luma.ingress"] == "true"


def test_empty_file_says_so():
    r = render("")
    assert not r.ok and "empty" in r.problems[0].message


def test_non_ascii_and_bom_before_the_edits_keep_positions_right():
    text = "\ufeff# 日本語 🎉\nservices:\n  web:   # ünïcode 🚀\n    image: \"ñ/x:1\"\n    labels: {é: \"ü\"}\n" \
           "    x-luma: {hosts: a.example.com, port: 80}\n"
    out = ok(text)
    assert out.startswith("\ufeff# 日本語 🎉\nname: p\nservices:\n  web:   # ünïcode 🚀\n")
    web = load(out.lstrip("\ufeff"))["services"]["web"]
    assert web["labels"]["é"] == "ü" and web["labels"]["luma.target"] == "p-web:80"


def test_renders_in_threads_keep_their_own_quote_style():
    """The file's quote style is per render (a context variable), not shared by concurrent renders."""
    from concurrent.futures import ThreadPoolExecutor

    single = "services:\n  web:\n    image: 'x'\n    command: 'a'\n    x-luma: {hosts: a.example.com, port: 80}\n"
    double = 'services:\n  web:\n    image: "x"\n    command: "a"\n    x-luma: {hosts: a.example.com, port: 80}\n'
    want = {t: api.render_text("c.yaml", t, project="p").text for t in (single, double)}
    assert want[single] != want[double]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda t: (t, api.render_text("c.yaml", t, project="p").text), [single, double] * 40))
    assert all(out == want[t] for t, out in got)
