"""x-luma ``hold``: how long the proxy holds a request of a stop-first service while none of its
containers runs (issue 23 item 1: "up to a bound the user can set, default 30 s; past the bound 503
with Retry-After"). Render, the label check, the Caddy config, and real Caddy on loopback."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from luma_compose import api, contract
from luma_compose.proxy import caddy_config
from luma_compose.routing.containers import build_table
from test_caddy_config import _caddy_installed, caddy, get, needs_caddy, rec  # noqa: F401 (fixtures)

HOLD = contract.LABEL_HOLD


def render(xluma: str, extra: str = "") -> api.RenderResult:
    text = ("services:\n  app:\n    image: notes:2\n" + extra +
            "    x-luma:\n      hosts: notes.test\n      port: 8080\n" + xluma)
    return api.render_text("compose.yaml", text, "notes", "/srv/notes")


@pytest.mark.parametrize("xluma, extra, want", [
    ("      rollout: stop-first\n", "", "30"),  # the default bound
    ("      rollout: stop-first\n      hold: 5\n", "", "5"),
    ("", "    deploy:\n      update_config:\n        order: stop-first\n", "30"),  # Compose's own key
    ("      hold: 90\n", "    deploy:\n      update_config:\n        order: stop-first\n", "90"),
    ("", "", None),  # start-first: no label, the proxy's usual window
])
def test_a_stop_first_service_gets_its_hold_label(xluma, extra, want):
    res = render(xluma, extra)
    assert res.ok, res.problems
    labels = res.routes[0].labels("notes")
    assert labels.get(HOLD) == want


@pytest.mark.parametrize("xluma", ["      hold: 5\n", "      rollout: start-first\n      hold: 5\n",
                                   "      rollout: stop-first\n      hold: 0\n",
                                   "      rollout: stop-first\n      hold: 601\n",
                                   "      rollout: stop-first\n      hold: '5'\n"])
def test_a_hold_without_stop_first_or_out_of_range_is_a_check_error(xluma):
    res = render(xluma)
    assert not res.ok and any("hold" in p.message for p in res.problems), res.problems
    assert all(p.line for p in res.problems)


@pytest.mark.parametrize("value", ["0", "601", "-1", "1.5", "30s", "{http.request.uri}", "", "٣"])
def test_a_bad_hold_label_withholds_only_its_route(value):
    bad = rec("a", "web", ["a.test"], "10.0.0.2", 3000)
    bad = bad.__class__(**{**bad.__dict__, "labels": {**bad.labels, HOLD: value}})
    t = build_table([bad, rec("b", "web", ["b.test"], "10.0.0.3", 3000)])
    assert [r.key for r in t.routes] == ["b/web"]
    assert any(HOLD in p and "a-web-1" in p for p in t.problems), t.problems


def held_table(port: int, hold: int):
    r = rec("a", "web", ["a.test"], "127.0.0.1", port)
    r = r.__class__(**{**r.__dict__, "labels": {**r.labels, HOLD: str(hold)}})
    return build_table([r, rec("b", "web", ["b.test"], "127.0.0.1", port + 1 if port < 65535 else 1)])


def test_the_config_holds_that_route_only_and_replays_it_within_its_own_window():
    cfg = caddy_config.build_config(held_table(9000, 5), tls="off")
    routes = {r["@id"]: r for r in cfg["apps"]["http"]["servers"]["luma"]["routes"] if "@id" in r}
    a, b = routes["luma-route:a/web"], routes["luma-route:b/web"]
    assert a["handle"][0] == {"handler": "vars", caddy_config.HOLD_VAR: "5"}
    proxy_a = [h for h in a["handle"] if h["handler"] == "reverse_proxy"][0]
    proxy_b = [h for h in b["handle"] if h["handler"] == "reverse_proxy"][0]
    assert proxy_a["load_balancing"]["try_duration"] == "5s"
    assert proxy_b["load_balancing"]["try_duration"] == caddy_config.TRY_DURATION
    errors = cfg["apps"]["http"]["servers"]["luma"]["errors"]["routes"]
    held, default = errors[0]["match"][0], errors[1]["match"][0]
    assert held["vars"] == {caddy_config.HOLD_VAR: ["5"]} and "< 5000.0" in held["expression"]
    assert default["expression"] == caddy_config.REPLAY_MATCH
    assert default["not"] == [{"vars": {caddy_config.HOLD_VAR: ["5"]}}]
    assert errors[-1]["handle"][0]["status_code"] == 503


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Named(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"new")

    def log_message(self, *a):
        pass


@needs_caddy
def test_real_caddy_holds_a_request_until_the_service_listens(caddy):
    # nothing listens yet (a stop-first roll between the old container's stop and the new one's start)
    port = closed_port()
    caddy_port = caddy(caddy_config.build_config(held_table(port, 30), tls="off"))
    servers: list[http.server.ThreadingHTTPServer] = []

    def start_later() -> None:
        time.sleep(1.5)
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Named)
        servers.append(srv)
        srv.serve_forever()

    threading.Thread(target=start_later, daemon=True).start()
    t0 = time.monotonic()
    try:
        assert get(caddy_port, "a.test", timeout=60) == (200, "new")
        print(f"held {time.monotonic() - t0:.1f}s")
    finally:
        for srv in servers:
            srv.shutdown()


@needs_caddy
def test_real_caddy_answers_503_with_retry_after_past_the_bound_and_replays_it_no_further(caddy):
    port = closed_port()
    caddy_port = caddy(caddy_config.build_config(held_table(port, 1), tls="off"))
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{caddy_port}/", headers={"Host": "a.test"})
    t0 = time.monotonic()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    print(f"503 after {time.monotonic() - t0:.1f}s")
    assert e.value.code == 503 and e.value.headers["Retry-After"] == "1"
    assert "no container answered" in e.value.read().decode()
