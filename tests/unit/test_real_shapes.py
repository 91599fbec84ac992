"""Shapes seen in real projects' compose files (issue 9), each judged by Compose itself: the output must be
what Compose runs for the input plus exactly the contract's additions (see compose_oracle.py)."""

from __future__ import annotations

import textwrap

import pytest

from compose_oracle import assert_compose_runs_input_plus_contract
from luma_compose import api


def render_ok(tmp_path, text: str, project: str = "r", env: dict | None = None) -> str:
    text = textwrap.dedent(text)
    r = api.render_text("compose.yaml", text, project, str(tmp_path), env or {})
    assert r.ok, [(p.location(), p.message) for p in r.problems]
    again = api.render_text("compose.yaml", r.text, project, str(tmp_path), env or {})
    assert again.ok and again.text == r.text, "render must be idempotent"
    return r.text


# ---- item 1: a routed service whose last key is `networks:` and that has no `labels:`

NETWORKS_LAST = {
    "list": """\
        services:
          web:
            x-luma: {hosts: a.example.com, port: 80}
            image: nginx
            networks:
              - front
        networks:
          front:
        """,
    "map-4-then-2": """\
        services:

            web:
              x-luma: {hosts: a.example.com, port: 80}
              image: nginx
              networks:
                front:
                  aliases:
                    - www
        networks:
          front:
        """,
    "map-6-comment-after": """\
        services:
              web:
                  x-luma:
                      hosts: a.example.com
                      port: 80
                  image: nginx
                  networks:
                      front: {}
                      back:
                  # trailing comment of the service
        networks:
          front:
          back:
        """,
    "list-indented-dashes": """\
        services:
          web:
            image: nginx
            x-luma: {hosts: a.example.com, port: 80}
            networks:
            - front
          db:
            image: postgres
            networks:
            - front
        networks:
          front: {}
        """,
}


@pytest.mark.parametrize("shape", sorted(NETWORKS_LAST))
def test_networks_as_the_last_key_without_labels(tmp_path, shape):
    text = textwrap.dedent(NETWORKS_LAST[shape])
    out = render_ok(tmp_path, text)
    assert_compose_runs_input_plus_contract(text, out, str(tmp_path), "r", {"web": ("a.example.com", 80)})


def test_new_blocks_follow_the_services_own_indentation(tmp_path):
    out = render_ok(tmp_path, NETWORKS_LAST["map-4-then-2"])
    assert "\n      labels:\n        luma.managed: \"true\"\n" in out
    assert "\n        luma:\n          aliases: [r-web]\n" in out


# ---- damaged input gives problems, never exceptions

def test_a_null_mapping_key_is_a_problem_not_a_crash():
    r = api.render_text("f.yaml", "services:\n  web:\n    image: x\n    labels:\n      &a : x\n", "p", ".", {})
    assert not r.ok and any("not a string" in p.message for p in r.problems)
    assert all(p.line for p in r.problems)


# ---- item 5: interpolated values in typed fields are Compose's to check, and no false "unknown key"

INTERPOLATED_TYPED = """\
    services:
      web:
        image: nginx
        x-owner: team-a
        pull_policy: ${PULL_POLICY:-always}
        healthcheck:
          test: ["CMD", "true"]
          retries: ${R:-3}
        gpus: ${GPUS:-all}
        cgroup: ${CG:-host}
        depends_on:
          db:
            condition: ${COND:-service_started}
        volumes:
          - type: ${VT:-bind}
            source: ./x
            target: /x
        x-luma: {hosts: a.example.com, port: 80}
      db:
        image: pg
        x-owner: team-b
        pull_policy: ${PULL_POLICY:-always}
    """


def test_interpolated_typed_fields_give_no_false_schema_errors(tmp_path):
    text = textwrap.dedent(INTERPOLATED_TYPED)
    out = render_ok(tmp_path, text)
    assert_compose_runs_input_plus_contract(text, out, str(tmp_path), "r", {"web": ("a.example.com", 80)})
    no_route = "services:\n  web:\n    image: nginx\n    x-owner: team-a\n    pull_policy: ${PULL_POLICY:-always}\n"
    assert api.render_text("c.yaml", no_route, "r", str(tmp_path), {}).ok


def test_a_real_unknown_key_is_still_reported_next_to_an_interpolated_value(tmp_path):
    text = "services:\n  web:\n    image: nginx\n    x-owner: a\n    pull_policy: ${P:-always}\n    imagee: x\n"
    r = api.render_text("c.yaml", text, "r", str(tmp_path), {})
    assert [p.message for p in r.problems] == ["compose-spec: services/web/imagee: unknown key 'imagee'"]
    assert (r.problems[0].line, r.problems[0].col) == (6, 5)
