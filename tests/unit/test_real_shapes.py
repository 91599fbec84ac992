"""Shapes seen in real projects' compose files (issue 9), each judged by Compose itself: the output must be
what Compose runs for the input plus exactly the contract's additions (see compose_oracle.py)."""

from __future__ import annotations

import textwrap

import pytest

from support.compose_oracle import assert_compose_runs_input_plus_contract
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


# ---- item 9: the diff a reviewer sees

def test_new_keys_go_after_the_comments_of_the_block_above(tmp_path):
    text = textwrap.dedent("""\
        services:
          web:
            image: nginx
            x-luma: {hosts: a.example.com, port: 80}
            environment:
              A: "1"
              # FOO: "true"

          # the database
          db:
            image: pg
        """)
    out = render_ok(tmp_path, text)
    lines = out.splitlines()
    assert lines[lines.index('      A: "1"') + 1] == '      # FOO: "true"'  # still under environment
    assert lines.index("  # the database") == lines.index("  db:") - 1  # still above db
    assert_compose_runs_input_plus_contract(text, out, str(tmp_path), "r", {"web": ("a.example.com", 80)})
    # uncommenting the line (what a reviewer would do) gives an environment variable, not a label
    fixed = out.replace('# FOO: "true"', 'FOO: "true"')
    r = api.render_text("c.yaml", fixed, "r", str(tmp_path), {})
    assert r.ok and r.text == fixed


def test_replacing_labels_alias_leaves_no_trailing_space(tmp_path):
    text = textwrap.dedent("""\
        x-labels: &labels
          team: core
        services:
          web:
            image: nginx
            x-luma: {hosts: a.example.com, port: 80}
            labels: *labels
        """)
    out = render_ok(tmp_path, text)
    assert not [line for line in out.splitlines() if line != line.rstrip()]
    assert "    labels:\n      team: core\n" in out
    assert_compose_runs_input_plus_contract(text, out, str(tmp_path), "r", {"web": ("a.example.com", 80)})


def test_new_entries_follow_the_files_quoting(tmp_path):
    text = "services:\n  web:\n    image: 'nginx'\n    environment:\n      A: '1'\n" \
           "    x-luma: {hosts: a.example.com, port: 80}\n"
    out = render_ok(tmp_path, text)
    assert "luma.managed: 'true'" in out and "luma.port: '80'" in out and '"' not in out
    assert_compose_runs_input_plus_contract(text, out, str(tmp_path), "r", {"web": ("a.example.com", 80)})
    double = text.replace("'", '"')
    assert 'luma.managed: "true"' in render_ok(tmp_path, double)


# ---- item 7: routing that can never work is an error (or, for deploy only, a warning)

def test_x_luma_in_an_included_file_is_an_error(tmp_path):
    (tmp_path / "inc.yaml").write_text("services:\n  api:\n    image: b\n"
                                       "    x-luma: {hosts: a.example.com, port: 80}\n")
    r = api.render_text("compose.yaml", "include:\n  - inc.yaml\nservices:\n  web:\n    image: a\n", "r",
                        str(tmp_path), {})
    assert not r.ok and r.text is None
    [p] = r.problems
    assert p.file.endswith("inc.yaml") and (p.line, p.col) == (4, 5) and "include" in p.message
    long_form = "include:\n  - path: [inc.yaml]\nservices:\n  web:\n    image: a\n"
    assert not api.render_text("compose.yaml", long_form, "r", str(tmp_path), {}).ok


@pytest.mark.parametrize("key", ["labels", "networks"])
def test_reset_labels_or_networks_on_a_routed_service_is_an_error(tmp_path, key):
    text = f"services:\n  web:\n    image: a\n    {key}: !reset {{}}\n    x-luma: {{hosts: a.example.com, port: 80}}\n"
    r = api.render_text("compose.yaml", text, "r", str(tmp_path), {})
    assert not r.ok and [(p.line, p.rule) for p in r.problems] == [(4, key)]
    assert "!reset" in r.problems[0].message


def test_container_name_on_a_routed_service_is_a_warning_with_the_fix(tmp_path):
    text = "services:\n  web:\n    image: a\n    container_name: web\n    x-luma: {hosts: a.example.com, port: 80}\n"
    r = api.render_text("compose.yaml", text, "r", str(tmp_path), {})
    assert r.ok and r.text  # render and the pipe still work: one container
    [w] = r.warnings
    assert (w.line, w.col, w.rule) == (4, 5, "container_name") and "deploy" in w.message
    assert "remove container_name" in w.hint and "'r-web'" in w.hint
    plain = "services:\n  web:\n    image: a\n    container_name: web\n"
    assert api.render_text("compose.yaml", plain, "r", str(tmp_path), {}).warnings == []


# ---- item 8: variables in x-luma, the Compose way

XLUMA_VARS = """\
    services:
      web:
        image: nginx
        x-luma:
          hosts: ${DOMAIN}
          port: ${HTTP_PORT:-80}
      api:
        image: nginx
        x-luma: {hosts: ["api.${DOMAIN}", static.example.com], port: 8080}
    """


def test_variables_in_x_luma_stay_in_the_labels_for_compose(tmp_path):
    text = textwrap.dedent(XLUMA_VARS)
    (tmp_path / ".env").write_text("DOMAIN=shop.example.com\n")
    out = render_ok(tmp_path, text)
    assert 'luma.hosts: "${DOMAIN}"' in out and 'luma.target: "r-web:${HTTP_PORT:-80}"' in out
    routes = {"web": ("shop.example.com", 80), "api": ("api.shop.example.com,static.example.com", 8080)}
    assert_compose_runs_input_plus_contract(text, out, str(tmp_path), "r", routes)
    # one rendered file serves every environment
    assert_compose_runs_input_plus_contract(text, out, str(tmp_path), "r",
                                            {"web": ("other.example.org", 9000),
                                             "api": ("api.other.example.org,static.example.com", 8080)},
                                            env={"DOMAIN": "other.example.org", "HTTP_PORT": "9000"})
    r = api.render_text("compose.yaml", text, "r", str(tmp_path), {})
    assert [x.hosts for x in r.routes] == [("shop.example.com",), ("api.shop.example.com", "static.example.com")]
    assert [x.port for x in r.routes] == [80, 8080] and r.warnings == []


def test_check_validates_the_interpolated_value_and_says_when_it_cannot(tmp_path):
    text = textwrap.dedent(XLUMA_VARS)
    r = api.render_text("compose.yaml", text, "r", str(tmp_path), {"DOMAIN": "https://shop.example.com"})
    assert not r.ok and any("has a scheme" in p.message for p in r.problems)
    r = api.render_text("compose.yaml", text, "r", str(tmp_path), {"DOMAIN": "x.example.com", "HTTP_PORT": "http"})
    assert not r.ok and any("port must be a whole number" in p.message for p in r.problems)
    r = api.render_text("compose.yaml", text, "r", str(tmp_path), {})  # DOMAIN unknown: a warning per use
    assert r.ok and len(r.warnings) == 2 and all("DOMAIN" in w.message and "cannot validate" in w.message
                                                 for w in r.warnings)


# ---- item 6: extends must not leak routing

def test_a_service_extending_a_routed_one_is_refused(tmp_path):
    text = textwrap.dedent("""\
        services:
          web:
            image: nginx
            x-luma: {hosts: a.example.com, port: 80}
          worker:
            extends: web
            command: work
          other:
            extends: {service: web}
        """)
    r = api.render_text("compose.yaml", text, "r", str(tmp_path), {})
    assert not r.ok and r.text is None
    assert [(p.line, p.rule) for p in r.problems] == [(6, "extends"), (9, "extends")]
    assert "proxy would route 'worker' as 'web'" in r.problems[0].message


@pytest.mark.parametrize("where", ["same file", "other file"])
def test_a_routed_service_taking_networks_through_extends_gains_no_default(tmp_path, where):
    base = "  base:\n    image: nginx\n    networks: [back]\n"
    if where == "other file":
        (tmp_path / "common.yaml").write_text("services:\n" + base + "networks:\n  back:\n")
        ext, base = "{file: common.yaml, service: base}", ""
    else:
        ext = "base"
    text = f"services:\n{base}  web:\n    extends: {ext}\n    x-luma: {{hosts: a.example.com, port: 80}}\n" \
           "networks:\n  back:\n"
    out = render_ok(tmp_path, text)
    assert_compose_runs_input_plus_contract(text, out, str(tmp_path), "r", {"web": ("a.example.com", 80)})


def test_extending_a_base_without_networks_keeps_default(tmp_path):
    text = "services:\n  base:\n    image: nginx\n  web:\n    extends: base\n" \
           "    x-luma: {hosts: a.example.com, port: 80}\n"
    out = render_ok(tmp_path, text)
    assert_compose_runs_input_plus_contract(text, out, str(tmp_path), "r", {"web": ("a.example.com", 80)})


# ---- item 4: a documented `-f base -f override` renders to what Compose runs for the pair

@pytest.mark.parametrize("base", [
    "services:\n  web:\n    image: a\n    volumes:\n      - ${DATA:-./data}:/srv\n  db:\n    image: pg\n",
    "services:\n  web:\n    image: a\n    depends_on: [\"${DB_HOST:-db}\"]\n  db:\n    image: pg\n",
    "services:\n  web:\n    image: a\n    volumes:\n      - ./data:/srv\n    environment: {A: \"${A:-x}\"}\n"
    "  db:\n    image: pg\n",
])
def test_a_merge_never_changes_meaning(tmp_path, base):
    (tmp_path / "base.yaml").write_text(base)
    (tmp_path / "override.yaml").write_text("services:\n  web:\n    x-luma: {hosts: a.example.com, port: 80}\n")
    files = [str(tmp_path / "base.yaml"), str(tmp_path / "override.yaml")]
    r = api.render(files, "r", None, None, {})
    assert r.ok, r.problems
    assert_compose_runs_input_plus_contract("", r.text, str(tmp_path), "r", {"web": ("a.example.com", 80)},
                                            in_files=files)
    # merged in Python, short syntaxes as written: ${...} kept, no warning (Compose's own merge of the first two
    # must interpolate: tests/unit/test_render_multi.py covers that path)
    assert "${" in r.text and r.warnings == []


# ---- shapes of popular self-hosted projects' files (written from their shapes, not copied)

REAL_SHAPES = {
    "traefik-style labels list, commented network list, trailing comment": """\
        name: ${COMPOSE_NAME:-stack}
        services:
            web:
                image: example/web
                container_name: ${COMPOSE_NAME:-stack}-web
                restart: ${RESTART_POLICY:-unless-stopped}
                x-luma: {hosts: a.example.com, port: 80}
                labels:
                    - "traefik.enable=true"
                    - "traefik.http.routers.web.rule=Host(`a.example.com`)"
                networks:
                    - traefik
                    # a private network for the app's own containers
                    - internal
                # Do not expose ports directly to the host
            db:
                image: postgres
                networks:
                    - internal
        networks:
            traefik:
                external: true
                name: ${TRAEFIK_NETWORK:-traefik}
            internal:
        """,
    "jitsi-style dotted network, interpolated alias": """\
        services:
          web:
            image: example/web:${TAG:-stable}
            restart: ${RESTART_POLICY:-unless-stopped}
            ports:
              - '${HTTP_PORT}:80'
            x-luma:
              hosts: meet.example.com
              port: 80
            networks:
              meet.jitsi:
                aliases:
                  - ${XMPP_DOMAIN:-meet.jitsi}
          prosody:
            image: example/prosody
            expose:
              - '5222'
            networks:
              meet.jitsi:
        networks:
          meet.jitsi:
        """,
    "mailcow-style ipv4 and aliases, anchors for defaults": """\
        x-defaults: &defaults
          restart: always
          logging:
            driver: json-file
        services:
          nginx-app:
            <<: *defaults
            image: example/nginx
            depends_on:
              - php-app
            x-luma: {hosts: [mail.example.com, autodiscover.example.com], port: 8080}
            networks:
              app-network:
                ipv4_address: ${IPV4_NETWORK:-172.22.1}.253
                aliases:
                  - nginx
          php-app:
            <<: *defaults
            image: example/php
            networks:
              app-network:
                aliases:
                  - phpfpm
        networks:
          app-network:
            driver: bridge
            ipam:
              driver: default
              config:
                - subnet: ${IPV4_NETWORK:-172.22.1}.0/24
        """,
    "sentry-style merge defaults with healthcheck, routed service last key environment": """\
        x-restart-policy: &restart_policy
          restart: unless-stopped
        x-app-defaults: &app_defaults
          <<: *restart_policy
          image: example/app:${APP_TAG:-latest}
          depends_on:
            redis:
              condition: service_healthy
          environment:
            APP_CONF: /etc/app
        services:
          redis:
            <<: *restart_policy
            image: redis
            healthcheck:
              test: redis-cli ping
              retries: ${HEALTHCHECK_RETRIES:-10}
          web:
            <<: *app_defaults
            command: run web
            x-luma: {hosts: sentry.example.com, port: 9000}
            environment:
              APP_CONF: /etc/app
              # APP_DEBUG: "1"
          worker:
            <<: *app_defaults
            command: run worker
        """,
}


@pytest.mark.parametrize("shape", sorted(REAL_SHAPES))
def test_shapes_of_real_projects(tmp_path, shape):
    text = textwrap.dedent(REAL_SHAPES[shape])
    r = api.render_text("compose.yaml", text, None if "COMPOSE_NAME" in text else "r", str(tmp_path),
                        {"HTTP_PORT": "8000"})
    assert r.ok, [(p.location(), p.message) for p in r.problems]
    routes = {x.service: (",".join(x.hosts), x.port) for x in r.routes}
    assert_compose_runs_input_plus_contract(text, r.text, str(tmp_path), r.project, routes, env={"HTTP_PORT": "8000"})
