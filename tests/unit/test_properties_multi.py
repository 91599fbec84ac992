"""Property tests for several -f files (issue 20): generated sets of a base file and one or two overrides,
with profiles, networks with `name:`, `${VAR}` in ports, volumes and depends_on, and `!reset`/`!override`.

Compose's own model is the oracle: whatever merge render takes, `docker compose config --format json` of its
output (every profile active) is that of the files plus exactly the contract's additions. A set render
cannot prove equal is refused (rule `merge`, nothing written), never rendered differently. Few examples:
each runs Compose about five times.
"""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from support.compose_oracle import assert_compose_runs_input_plus_contract
from luma_compose import api

NAMES = ["web", "api", "admin", "worker"]


@st.composite
def service(draw, name: str, earlier: list[str], routed: bool) -> list[str]:
    lines = [f"  {name}:", f"    image: example/{name}:1"]
    if draw(st.booleans()):
        lines.append(f"    profiles: [{draw(st.sampled_from(['admin', 'debug']))}]")
    if draw(st.booleans()):
        lines.append(f'    ports: ["{draw(st.sampled_from(["${P_" + name.upper() + ":-8000}:80", "8001:80"]))}"]')
    volume = draw(st.sampled_from([None, "${DATA:-./data}:/srv", "./data:/srv", "cache:/cache"]))
    if volume:
        lines.append(f'    volumes: ["{volume}"]')
    if earlier and draw(st.booleans()):
        dep = earlier[0]
        if draw(st.booleans()):
            lines += ["    depends_on:", f"      {dep}: {{condition: service_started, required: false}}"]
        else:
            lines.append(f'    depends_on: ["${{DEP:-{dep}}}"]')
    if draw(st.booleans()):
        lines.append("    networks: [front]")
    if routed:
        port = draw(st.sampled_from(["80", "${PORT:-8080}"]))
        lines += ["    x-luma:", f"      hosts: {name}.example.com", f"      port: {port}"]
    return lines


@st.composite
def override(draw, names: list[str], base: dict[str, list[str]]) -> str:
    lines = ["services:"]
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True)):
        body = []
        if draw(st.booleans()):
            body.append("    restart: always")
        if draw(st.booleans()):
            body.append('    environment: {A: "${A:-x}"}')
        written = "\n".join(base[name])
        if "ports:" in written and draw(st.booleans()):
            body.append("    ports: !reset []")
        if "volumes:" in written and draw(st.booleans()):
            body.append('    volumes: !override ["./other:/srv"]')
        if "profiles:" in written and draw(st.booleans()):
            body.append("    profiles: !reset []")
        lines += [f"  {name}:"] + (body or ["    stop_grace_period: 5s"])
    return "\n".join(lines) + "\n"


@st.composite
def file_sets(draw):
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    routed = draw(st.lists(st.booleans(), min_size=len(names), max_size=len(names)))
    base: dict[str, list[str]] = {}
    for i, (name, r) in enumerate(zip(names, routed)):
        base[name] = draw(service(name, names[:i], r))
    text = "services:\n" + "\n".join(line for lines in base.values() for line in lines) + "\n"
    text += "networks:\n  front:\n"
    if draw(st.booleans()):
        text += "    name: ${FRONT:-front-net}\n"
    if draw(st.booleans()):
        text += "  default:\n    name: shared\n"
    if any("cache:" in line for lines in base.values() for line in lines):
        text += "volumes:\n  cache:\n"
    files = [text] + [draw(override(names, base)) for _ in range(draw(st.integers(1, 2)))]
    env = draw(st.dictionaries(st.sampled_from(["PORT", "DATA", "P_WEB", "A", "FRONT"]),
                               st.sampled_from(["9000", "./elsewhere", "v"]), max_size=2))
    if "PORT" in env:
        env["PORT"] = "9000"
    if "DATA" in env:
        env["DATA"] = "./elsewhere"
    if "P_WEB" in env:
        env["P_WEB"] = "8002"
    return files, env


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(file_sets())
def test_a_merged_render_is_what_compose_runs_for_the_files(tmp_path_factory, case):
    texts, env = case
    d = tmp_path_factory.mktemp("multi")
    files = []
    for i, text in enumerate(texts):
        (d / f"f{i}.yaml").write_text(text)
        files.append(str(d / f"f{i}.yaml"))
    r = api.render(files, "p", None, None, env)
    event("refused" if not r.ok else "interpolated" if r.warnings else "variables kept")
    if not r.ok:  # refused: only because the merge could not be proven equal, and nothing written
        assert r.text is None and [p.rule for p in r.problems] == ["merge"], r.problems
        return
    routes = {x.service: (",".join(x.hosts), x.port, x.health_path) for x in r.routes}
    assert_compose_runs_input_plus_contract("", r.text, str(d), "p", routes, env={"COMPOSE_PROFILES": "*", **env},
                                            in_files=files)
