"""Several -f files (issue 20): whichever merge render uses, Compose's model of the output must be its model
of the files, every profile active, plus exactly the contract's additions. Compose is the oracle here (the
real binary, no engine: see support/compose_oracle.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from support.compose_oracle import assert_compose_runs_input_plus_contract, compose_model
from luma_compose import api, contract
from luma_compose.compose import merge, readback
from luma_compose.engine import compose_cli

ALL_PROFILES = {"COMPOSE_PROFILES": "*"}
LUMA = os.path.join(os.path.dirname(sys.executable), "luma-compose")

PROFILES = """\
services:
  web:
    image: nginx
    volumes: ["${DATA:-./data}:/srv"]
    depends_on: {admin: {condition: service_started, required: false}}
    x-luma: {hosts: web.example.com, port: 80}
  admin:
    image: nginx
    profiles: [admin]
    x-luma: {hosts: admin.example.com, port: 80}
"""
RESTART = "services: {web: {restart: always}}\n"


def write(tmp_path, *texts: str) -> list[str]:
    files = []
    for i, text in enumerate(texts):
        path = tmp_path / f"f{i}.yaml"
        path.write_text(text)
        files.append(str(path))
    return files


def render_files(tmp_path, *texts: str, env: dict | None = None):
    files = write(tmp_path, *texts)
    r = api.render(files, "p", None, None, env or {})
    return files, r


def test_services_in_profiles_are_kept(tmp_path):
    files, r = render_files(tmp_path, PROFILES, RESTART)
    assert r.ok, r.problems
    assert {x.service for x in r.routes} == {"web", "admin"}
    assert_compose_runs_input_plus_contract("", r.text, str(tmp_path), "p", {"web": ("web.example.com", 80),
                                            "admin": ("admin.example.com", 80)}, env=ALL_PROFILES, in_files=files)
    rc, model = compose_model(r.text, str(tmp_path))  # no profile active: Compose still accepts the output
    assert rc == 0, model


def test_a_renamed_default_network_keeps_its_name(tmp_path):
    a = PROFILES.replace("    profiles: [admin]\n", "") + "networks: {default: {name: shared}}\n"
    files, r = render_files(tmp_path, a, RESTART)
    assert r.ok, r.problems
    assert_compose_runs_input_plus_contract("", r.text, str(tmp_path), "p", {"web": ("web.example.com", 80),
                                            "admin": ("admin.example.com", 80)}, env=ALL_PROFILES, in_files=files)
    rc, model = compose_model(r.text, str(tmp_path))
    assert rc == 0 and model["networks"]["default"]["name"] == "shared"


@pytest.mark.parametrize("env, port", [({}, 8080), ({"PORT": "9000"}, 9000)])
def test_a_port_from_a_variable_renders_as_from_one_file(tmp_path, env, port):
    a = PROFILES.replace("x-luma: {hosts: web.example.com, port: 80}", "x-luma:\n      hosts: web.example.com\n      port: ${PORT:-8080}")
    files, r = render_files(tmp_path, a, RESTART, env=env)
    assert r.ok, r.problems
    assert [x.port for x in r.routes if x.service == "web"] == [port]
    assert_compose_runs_input_plus_contract("", r.text, str(tmp_path), "p", {"web": ("web.example.com", port),
                                            "admin": ("admin.example.com", 80)}, env={**ALL_PROFILES, **env},
                                            in_files=files)
    single = api.render_text("a.yaml", a, "p", str(tmp_path), env)
    assert single.ok and [x.port for x in single.routes if x.service == "web"] == [port]


@pytest.mark.parametrize("env, port", [({}, 8080), ({"NGINX_PORT": "9000"}, 9000)])
@pytest.mark.parametrize("entry", ["${NGINX_PORT:-8080}", "${NGINX_PORT:-8080}/tcp"])
def test_the_port_from_expose_with_a_variable(tmp_path, env, port, entry):
    text = (f'services:\n  web:\n    image: nginx\n    expose: ["{entry}"]\n'
            "    x-luma: {hosts: web.example.com}\n")
    r = api.render_text("compose.yaml", text, "p", str(tmp_path), env)
    assert r.ok, r.problems
    assert r.routes[0].port == port
    assert 'luma.port: "${NGINX_PORT:-8080}"' in r.text  # kept for Compose to interpolate at `up`, as `port: ${...}`
    assert_compose_runs_input_plus_contract(text, r.text, str(tmp_path), "p", {"web": ("web.example.com", port)},
                                            env=env)


def test_an_unknown_variable_in_expose_warns_as_in_port(tmp_path):
    text = 'services:\n  web:\n    image: nginx\n    expose: ["${NGINX_PORT}"]\n    x-luma: {hosts: web.example.com}\n'
    r = api.render_text("compose.yaml", text, "p", str(tmp_path), {})
    assert r.ok and [w.rule for w in r.warnings] == ["x-luma"] and "NGINX_PORT" in r.warnings[0].message


def test_a_variable_in_expose_that_is_no_port_is_refused(tmp_path):
    text = 'services:\n  web:\n    image: nginx\n    expose: ["${P:-80-90}"]\n    x-luma: {hosts: web.example.com}\n'
    r = api.render_text("compose.yaml", text, "p", str(tmp_path), {})
    assert not r.ok and "not a single TCP port" in r.problems[0].message


@pytest.fixture
def compose_runs(monkeypatch) -> list[str]:
    """The kinds of the Compose runs of a merged render (model, raw, interpolated, normalized)."""
    kinds: list[str] = []
    real = compose_cli.MergedRender._run

    def counting(self, kind, *args):
        kinds.append(kind)
        return real(self, kind, *args)

    monkeypatch.setattr(compose_cli.MergedRender, "_run", counting)
    return kinds


def test_a_merge_that_keeps_variables_needs_one_round_of_compose_runs(tmp_path, compose_runs):
    """Merged here: Compose runs twice, side by side (the model of the files, the model of the merged text)."""
    files = write(tmp_path, "services:\n  web:\n    image: a\n    environment: {A: '${A:-x}'}\n",
                  "services:\n  web:\n    x-luma: {hosts: a.example.com, port: 80}\n")
    r = api.render(files, "p", None, None, {})
    assert r.ok and "${A:-x}" in r.text and r.warnings == []
    assert compose_runs == ["model", "model"]


def test_a_bind_mount_from_a_variable_is_merged_here_keeping_the_variable(tmp_path, compose_runs):
    """`${DATA:-./data}:/srv` stays short syntax in the merge made here, so it is still a bind mount."""
    files = write(tmp_path, PROFILES, RESTART)
    r = api.render(files, "p", None, None, {"DATA": "/srv/data"})
    assert r.ok and r.warnings == [] and '"${DATA:-./data}:/srv"' in r.text
    assert compose_runs == ["model", "model"]
    assert_compose_runs_input_plus_contract("", r.text, str(tmp_path), "p", {"web": ("web.example.com", 80),
                                            "admin": ("admin.example.com", 80)},
                                            env={**ALL_PROFILES, "DATA": "/srv/data"}, in_files=files)


def test_a_bind_mount_from_a_variable_goes_straight_to_the_interpolated_merge(tmp_path, compose_runs, monkeypatch):
    """When Compose merges: `${DATA:-./data}:/srv` merged uninterpolated reads as a named volume: that merge is
    made beside the model of the files, seen not to read back (no Compose run), and the interpolated one is read
    back."""
    monkeypatch.setattr(merge, "merge_texts", lambda texts: None)
    files = write(tmp_path, PROFILES, RESTART)
    r = api.render(files, "p", None, None, {"DATA": "/srv/data"})
    assert r.ok and [w.rule for w in r.warnings] == ["merge"] and "source: /srv/data" in r.text
    assert sorted(compose_runs) == ["interpolated", "model", "model", "raw"]


def test_a_merge_here_that_does_not_read_back_falls_back_to_compose(tmp_path, compose_runs, monkeypatch):
    """Correctness never rests on the merge made here: a wrong one (here: the override file forgotten) is
    read by Compose, seen to differ from the files, and Compose merges the files."""
    monkeypatch.setattr(merge, "merge_texts", lambda texts: texts[0])
    files = write(tmp_path, "services:\n  web:\n    image: a\n    x-luma: {hosts: a.example.com, port: 80}\n",
                  RESTART)
    r = api.render(files, "p", None, None, {})
    assert r.ok and "restart: always" in r.text
    assert compose_runs == ["model", "model", "raw", "model"]
    assert_compose_runs_input_plus_contract("", r.text, str(tmp_path), "p", {"web": ("a.example.com", 80)},
                                            env=ALL_PROFILES, in_files=files)


@pytest.mark.parametrize("interpolate", [False, True])
def test_the_bench_sets_take_the_one_round_path(tmp_path, compose_runs, interpolate):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
    try:
        import render_speed
    finally:
        sys.path.pop(0)
    files = write(tmp_path, *render_speed.generated_set(20, interpolate))
    r = api.render(files, "p", None, None, {})
    assert r.ok and r.warnings == [] and compose_runs == ["model", "model"]
    routes = {x.service: (",".join(x.hosts), x.port) for x in r.routes}
    assert len(routes) == 10
    assert_compose_runs_input_plus_contract("", r.text, str(tmp_path), "p", routes, env=ALL_PROFILES, in_files=files)


def test_a_named_volume_from_a_variable_keeps_the_variable(tmp_path):
    files = write(tmp_path, "services:\n  web:\n    image: a\n    volumes: ['${VOL:-./x}:/srv']\nvolumes: {data: {}}\n",
                  "services:\n  web:\n    x-luma: {hosts: a.example.com, port: 80}\n")
    r = api.render(files, "p", None, None, {"VOL": "data"})  # a name, not a path: the raw merge is right
    assert r.ok and "${VOL:-./x}" in r.text and r.warnings == []
    assert_compose_runs_input_plus_contract("", r.text, str(tmp_path), "p", {"web": ("a.example.com", 80)},
                                            env={"VOL": "data"}, in_files=files)


def test_a_merge_that_never_reads_back_is_refused_naming_where(tmp_path, monkeypatch):
    """Whatever merge Compose makes, a render whose output Compose reads differently is never returned."""
    monkeypatch.setattr(merge, "merge_texts", lambda texts: None)
    files = write(tmp_path, PROFILES, RESTART)

    def lossy(name, text, interpolated):
        r = api.render_text(name, text, "p", str(tmp_path), {}, interpolated=interpolated)
        r.text = r.text.replace("restart: always", "restart: on-failure")
        return r

    r = compose_cli.MergedRender(files, "p", str(tmp_path), {}, lossy).run()
    assert not r.ok and r.text is None
    assert [p.rule for p in r.problems] == ["merge"]
    assert "services.web.restart: 'always' in the files, 'on-failure' in the merged file" in r.problems[0].message


def test_a_refused_merge_prints_nothing_and_exits_1(tmp_path, monkeypatch, capsys):
    from luma_compose.cli import commands

    monkeypatch.setattr(merge, "merge_texts", lambda texts: None)
    files = write(tmp_path, PROFILES, RESTART)
    real = api.render_text

    def lossy(name, text, *args, **kw):
        r = real(name, text, *args, **kw)
        r.text = r.text.replace("image: nginx", "image: httpd", 1)
        return r

    monkeypatch.setattr(api, "render_text", lossy)
    assert commands.render(files, "p") == 1
    out, err = capsys.readouterr()
    assert out == "" and "cannot be merged into one file that Compose reads as it reads them" in err
    assert ".image: 'nginx' in the files, 'httpd' in the merged file" in err


def test_compose_refusing_the_files_is_a_usage_error(tmp_path):
    files = write(tmp_path, "services:\n  web:\n    image: a\n    depends_on: [nothere]\n", RESTART)
    p = subprocess.run([LUMA, "render", "-f", files[0], "-f", files[1]], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == "" and "could not merge" in p.stderr and "nothere" in p.stderr


# ---- the comparison itself (pure)

def _route(service: str) -> contract.RoutedService:
    return contract.RoutedService(service, ("a.example.com",), 80, "/up")


def _model(extra_labels: dict | None = None, alias: str = "p-web") -> dict:
    labels = {"team": "x", **(extra_labels or {})}
    return {"name": "p", "services": {"web": {"image": "a", "labels": labels,
                                              "networks": {"default": None, "luma": {"aliases": [alias]}}}},
            "networks": {"default": {"name": "p_default"}, "luma": {"name": "p_luma"}}}


def test_difference_accepts_exactly_the_contract():
    model_in = {"name": "p", "services": {"web": {"image": "a", "labels": {"team": "x"},
                                                  "networks": {"default": None}}},
                "networks": {"default": {"name": "p_default"}}}
    labels = contract.route_labels("p", "web", ["a.example.com"], 80, "/up")
    assert readback.difference(model_in, _model(labels), "p", [_route("web")]) is None
    assert "labels" in readback.difference(model_in, _model({**labels, "luma.port": "81"}), "p", [_route("web")])
    assert readback.difference(model_in, _model({**labels, "luma.port": "81"}), "p", [_route("web")],
                               exact_labels=False) is None
    assert "networks.luma" in readback.difference(model_in, _model(labels, "x"), "p", [_route("web")])
    changed = _model(labels)
    changed["services"]["web"]["image"] = "b"
    assert readback.difference(model_in, changed, "p", [_route("web")]) == \
        "services.web.image: 'a' in the files, 'b' in the merged file"
    del changed["services"]["web"]
    assert "services.web" in readback.difference(model_in, changed, "p", [_route("web")])


def test_compose_config_runs_with_a_lazier_collector_unless_gogc_is_set(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(compose_cli, "run", lambda cmd, timeout: seen.append(cmd.env) or
                        subprocess.CompletedProcess(cmd.argv, 0, "{}", ""))
    m = compose_cli.MergedRender(["a.yaml", "b.yaml"], "p", str(tmp_path), None, None)
    m._run("model")
    monkeypatch.setenv("GOGC", "150")
    m._run("model")
    m = compose_cli.MergedRender(["a.yaml", "b.yaml"], "p", str(tmp_path), {"GOGC": "90"}, None)
    m._run("model")
    assert [e["GOGC"] for e in seen] == ["400", "150", "90"]
