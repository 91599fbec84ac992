"""Issue 22 items 1 and 2: paths (longest prefix, strip_prefix, one project sharing a host) and
redirects (308 to the first host), in the routing core, both Caddy layouts, and the real Caddy.

Pure: records, the fake swarm's service shape, and the caddy binary on loopback (no Docker).
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import json
import threading

import pytest

from luma_compose import contract
from luma_compose.records import ServiceRecord
from luma_compose.deploy.plan import claim_keys, owned_elsewhere
from luma_compose.proxy import caddy_config
from luma_compose.routing import services
from luma_compose.routing.claims import RouteTable
from luma_compose.routing.containers import build_table
from luma_compose.swarm import routes as edge_layout
from support.records import routed
from test_caddy_config import _caddy_installed, caddy, needs_caddy, rec  # noqa: F401  (the real-Caddy fixture)

T1, T2 = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"
PATHS, STRIP, REDIRECT = contract.LABEL_PATHS, contract.LABEL_STRIP_PREFIX, contract.LABEL_REDIRECT_FROM


def svc(project, service, hosts, created=T1, **labels):
    """A swarm service as `docker stack deploy` makes it, with extra labels."""
    lb = {**contract.route_labels(project, service, hosts.split(","), 3000, "/up"),
          contract.STACK_NAMESPACE_LABEL: project, **labels}
    return ServiceRecord(contract.stack_service(project, service), labels=lb, created=created)


def both(*claims):
    """The same claims on one host and on a swarm: (one-host table, swarm table)."""
    one = build_table([routed(p, s, hosts=h.split(","), created=c, labels=lb) for p, s, h, c, lb in claims])
    swarm = services.table([svc(p, s, h, c, **lb) for p, s, h, c, lb in claims])
    return one, swarm


def view(t):
    return [(r.key, r.hosts, r.paths, r.strip_prefix, r.redirect_from) for r in t.routes]


SHOP = [("shop", "web", "shop.test", T1, {REDIRECT: "www.shop.test"}),
        ("shop", "api", "shop.test", T1, {PATHS: "/api,/socket", STRIP: "true"}),
        ("shop", "v2", "shop.test", T1, {PATHS: "/api/v2"})]


# ---------------------------------------------------------------------------------------- core

def test_one_project_shares_a_host_by_path_on_both_targets():
    one, swarm = both(*SHOP)
    assert view(one) == view(swarm) == [
        ("shop/api", ("shop.test",), ("/api", "/socket"), True, ()),
        ("shop/v2", ("shop.test",), ("/api/v2",), False, ()),
        ("shop/web", ("shop.test",), (), False, ("www.shop.test",))]
    assert one.conflicts == swarm.conflicts == ()
    assert one.to_json()["routes"][2]["redirect_to"] == "shop.test"


@pytest.mark.parametrize("evil", [
    ("evil", "web", "shop.test", T2, {PATHS: "/admin"}),            # a path under a host it does not own
    ("evil", "web", "evil.test", T2, {REDIRECT: "shop.test"}),     # a redirect of another's host
    ("evil", "web", "evil.test", T2, {REDIRECT: "www.shop.test"}),  # another's redirect host
    ("evil", "web", "SHOP.test", T2, {PATHS: "/api/v2/x"}),        # a longer prefix, in another case
])
def test_a_path_or_redirect_never_takes_another_projects_host(evil):
    one, swarm = both(*SHOP, evil)
    for t in (one, swarm):
        assert [c.kind for c in t.conflicts] == ["host"] and t.conflicts[0].winner.startswith("shop/")
        assert [v for v in view(t) if v[0].startswith("shop/")] == view(both(*SHOP)[0])  # served as before
        assert all(r.project != "evil" or "shop.test" not in r.claimed for r in t.routes)


def test_the_older_project_keeps_a_host_even_against_paths_and_the_incumbent_keeps_it_per_project():
    # project-level incumbency: the served route id is shop/web, the host stays with the shop's api too
    t = build_table([routed("evil", "web", hosts=["shop.test"], created=T1),
                     routed("shop", "api", hosts=["shop.test"], created=T2, labels={PATHS: "/api"})],
                    incumbents={"shop.test": "shop/web"},
                    networks=None)
    assert [r.key for r in t.routes] == ["shop/api"] and t.conflicts[0].loser == "evil/web"


@pytest.mark.parametrize("a, b, key", [
    ({PATHS: "/api"}, {PATHS: "/API"}, "shop.test/api"),  # Caddy's path matcher ignores case
    ({}, {}, "shop.test"),                                # two services without paths
    ({REDIRECT: "www.shop.test"}, {REDIRECT: "www.shop.test"}, "www.shop.test"),
])
def test_two_services_of_one_project_on_the_same_path_is_a_path_conflict(a, b, key):
    host = "a.test" if REDIRECT in a else "shop.test"
    one, swarm = both(("shop", "a", host, T1, a), ("shop", "b", host.replace("a.", "b."), T2, b))
    for t in (one, swarm):
        assert [(c.kind, c.key, c.winner, c.loser) for c in t.conflicts] == [("path", key, "shop/a", "shop/b")]
        assert "same project" in t.conflicts[0].message


def test_a_redirect_goes_only_to_a_first_host_its_route_keeps():
    one, _ = both(("old", "web", "shop.test", T1, {}),
                  ("new", "web", "shop.test,new.test", T2, {REDIRECT: "www.new.test"}))
    assert view(one) == [("new/web", ("new.test",), (), False, ()), ("old/web", ("shop.test",), (), False, ())]


def test_an_exact_redirect_host_beats_another_projects_wildcard():
    one, _ = both(("a", "web", "a.test", T1, {REDIRECT: "www.x.test"}), ("b", "web", "*.x.test", T2, {}))
    assert [(c.kind, c.key) for c in one.conflicts] == [("wildcard", "www.x.test")]
    ids = [r.get("@id") for r in caddy_config.build_config(one, tls="off")["apps"]["http"]["servers"]["luma"]["routes"]]
    assert ids.index("luma-route:a/web#redirect") < ids.index("luma-route:b/web#wildcard")


HOSTILE_PATHS = ["/{http.request.host}", "/api/*", "/api%2F", "/api?x=1", "/a/../b", "/api/", "api", "/a b",
                 "/${X}", '/a"', "/a\\b", "/" + "a" * 300, "/a\n/b", "/a{", "/", "/a,/A",
                 ",".join(f"/p{i}" for i in range(33))]  # at most 32 paths


@pytest.mark.parametrize("value", HOSTILE_PATHS)
def test_labels_that_try_to_inject_placeholders_or_matchers_are_refused(value):
    one, swarm = both(("a", "web", "a.test", T1, {}), ("evil", "web", "evil.test", T1, {PATHS: value}))
    for t in (one, swarm):
        assert [r.key for r in t.routes] == ["a/web"]
        assert any("luma.paths" in p for p in t.problems), t.problems


@pytest.mark.parametrize("labels", [
    {REDIRECT: "{http.request.host}"}, {REDIRECT: "a.test/x"}, {REDIRECT: "a.test."}, {REDIRECT: "evil.test"},
    {STRIP: "yes"}, {STRIP: "true"}, {REDIRECT: "x.test,"}, {REDIRECT: "a.test:80"},
])
def test_bad_redirect_and_strip_labels_are_refused(labels):
    one, swarm = both(("a", "web", "a.test", T1, {}), ("evil", "web", "evil.test", T1, labels))
    for t in (one, swarm):
        assert [r.key for r in t.routes] == ["a/web"], labels


def test_a_redirect_from_a_wildcard_first_host_is_refused():
    one, swarm = both(("evil", "web", "*.e.test,e.test", T1, {REDIRECT: "www.x.test"}))
    assert one.routes == swarm.routes == () and "wildcard" in one.problems[0]


def test_dry_run_lists_paths_and_redirects_and_refuses_a_redirect_another_project_owns():
    assert claim_keys("api", ["Shop.test"], ["/api"], ["www.shop.test"]) == {
        "shop.test/api": "api", "www.shop.test": "api (308)"}
    table, _ = both(("shop", "web", "shop.test", T1, {REDIRECT: "www.shop.test"}))
    want = [contract.RoutedService("web", ("evil.test",), 3000, "/up", redirect_from=("www.shop.test",))]
    assert owned_elsewhere("evil", want, table) and not owned_elsewhere("shop", want, table)


# ------------------------------------------------------------------------------ the Caddy layouts

def _main(cfg):
    return [r for r in cfg["apps"]["http"]["servers"]["luma"]["routes"] if "@id" in r]


def test_one_host_layout_longest_prefix_first_strip_on_the_proxied_copy_and_308():
    one, _ = both(*SHOP)
    cfg = caddy_config.build_config(one, tls="acme", public_https_port=8443)
    routes = _main(cfg)
    assert [(r["@id"], r["match"][0].get("path")) for r in routes] == [
        ("luma-route:shop/api#path/socket", ["/socket", "/socket/*"]),
        ("luma-route:shop/v2#path/api/v2", ["/api/v2", "/api/v2/*"]),
        ("luma-route:shop/api#path/api", ["/api", "/api/*"]),
        ("luma-route:shop/web", None),
        ("luma-route:shop/web#redirect", None)]
    # stripped on reverse_proxy's own copy: the replay after a config load still sees /api/...
    assert routes[2]["handle"][0]["rewrite"] == {"strip_path_prefix": "/api"}
    assert "rewrite" not in routes[1]["handle"][0]
    assert routes[4]["handle"][0] == {"handler": "static_response", "status_code": 308,
                                      "headers": {"Location": ["https://shop.test:8443{http.request.uri}"]}}
    # plain HTTP: straight to the target over HTTPS (one redirect, not two); certificates for both
    plain = cfg["apps"]["http"]["servers"]["luma_http"]["routes"]
    assert plain[0]["match"] == [{"host": ["www.shop.test"]}]
    assert plain[0]["handle"][0]["headers"]["Location"] == ["https://shop.test:8443{http.request.uri}"]
    assert cfg["apps"]["tls"]["automation"]["policies"][0]["subjects"] == ["shop.test", "www.shop.test"]
    text = json.dumps(cfg)
    ids = [m for m in text.split('"@id":')[1:]]
    assert len(ids) == len(set(i.split(",")[0] for i in ids))  # @ids are unique in the whole config
    assert caddy_config.served_hosts(cfg) == {"shop.test": "shop/api", "www.shop.test": "shop/web"}
    assert set(caddy_config.served_upstreams(cfg)) == {"shop/api", "shop/v2", "shop/web"}
    off = caddy_config.build_config(one, tls="off", public_http_port=8080)
    assert _main(off)[4]["handle"][0]["headers"]["Location"] == ["http://shop.test:8080{http.request.uri}"]


def test_a_path_route_without_upstreams_answers_503_for_its_paths_only():
    t = build_table([routed("shop", "web", hosts=["shop.test"], created=T1),
                     routed("shop", "api", hosts=["shop.test"], created=T1, labels={PATHS: "/api"})])
    t = RouteTable(tuple(dataclasses.replace(r, withheld="shadowed") if r.service == "api" else r for r in t.routes))
    routes = _main(caddy_config.build_config(t, tls="off"))
    assert [(r["@id"], r["handle"][0]["handler"], r["handle"][0].get("status_code")) for r in routes] == [
        ("luma-route:shop/api#path/api", "static_response", 503), ("luma-route:shop/web", "reverse_proxy", None)]


def test_swarm_edge_layout_has_the_same_order_strip_and_redirects():
    _, swarm = both(*SHOP, ("b", "web", "*.shop.test", T2, {PATHS: "/x"}))
    cfg = edge_layout.edge_config(swarm, 80, "lp", edge_layout.EdgeTLS(mode="acme"))
    routes = _main(cfg)
    assert [r["@id"] for r in routes] == [
        "luma-route:shop/api#path/socket", "luma-route:shop/v2#path/api/v2", "luma-route:shop/api#path/api",
        "luma-route:shop/web", "luma-route:shop/web#redirect", "luma-route:b/web/*#path/x"]
    assert routes[2]["handle"][0]["rewrite"] == {"strip_path_prefix": "/api"}
    assert routes[2]["handle"][0]["headers"]["request"]["set"]["Luma-Alias"] == ["shop-api"]
    assert routes[4]["handle"][0]["headers"]["Location"] == ["https://shop.test{http.request.uri}"]
    plain = cfg["apps"]["http"]["servers"]["luma_http"]["routes"]
    assert plain[0]["handle"][0]["headers"]["Location"] == ["https://shop.test{http.request.uri}"]
    assert cfg["apps"]["tls"]["automation"]["policies"][0]["subjects"] == ["*.shop.test", "shop.test",
                                                                           "www.shop.test"]
    off = _main(edge_layout.edge_config(swarm, 8080, "lp"))
    assert off[4]["handle"][0]["headers"]["Location"] == ["http://shop.test:8080{http.request.uri}"]


# ---------------------------------------------------------------------------------- real Caddy

class Echo:
    """An upstream that answers ``NAME PATH?QUERY``."""

    def __init__(self, name):
        outer = name

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = f"{outer} {self.path}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def raw(port, host, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path, headers={"Host": host})
    r = c.getresponse()
    return r.status, r.read().decode(), r.getheader("Location")


@needs_caddy
def test_real_caddy_longest_prefix_strip_and_redirect(caddy):  # noqa: F811
    ups = {n: Echo(n) for n in ("web", "api", "v2")}
    lb = {"web": {REDIRECT: "www.shop.test"}, "api": {PATHS: "/api", STRIP: "true"}, "v2": {PATHS: "/api/v2"}}
    recs = []
    for n, u in ups.items():
        r = rec("shop", n, ["shop.test"], "127.0.0.1", u.port, name="127.0.0.1")
        recs.append(dataclasses.replace(r, labels={**r.labels, **lb[n]}))
    port = caddy(caddy_config.build_config(build_table(recs), tls="off"))
    assert raw(port, "shop.test", "/api/x?q=1")[:2] == (200, "api /x?q=1")
    assert raw(port, "shop.test", "/api")[:2] == (200, "api /")
    assert raw(port, "shop.test", "/apix")[:2] == (200, "web /apix")  # /api never matches /apix
    assert raw(port, "shop.test", "/api/v2/y")[:2] == (200, "v2 /api/v2/y")  # the longest prefix wins
    assert raw(port, "shop.test", "/API/z")[:2] == (200, "api /z")  # Caddy's path matcher ignores case
    status, _, location = raw(port, "www.shop.test", "/a/b?c=d")
    assert (status, location) == (308, "http://shop.test/a/b?c=d")


# ------------------------------------------------------------------------------------ check

def check(text):
    from luma_compose import api
    r = api.render_text("c.yaml", text, "p", "/nonexistent/dir", {})
    return r


def compose(web, api_):
    return ("services:\n  web:\n    image: x\n    x-luma:\n      hosts: [a.test]\n      port: 80\n" + web
            + "  api:\n    image: x\n    x-luma:\n      hosts: [a.test]\n      port: 80\n" + api_)


def test_check_accepts_a_host_shared_by_path_and_renders_the_labels():
    r = check(compose("      redirect_from: www.a.test\n",
                      "      paths: [/api, /socket]\n      strip_prefix: true\n"))
    assert r.ok, [p.message for p in r.problems]
    assert "luma.paths: /api,/socket" in r.text and 'luma.strip_prefix: "true"' in r.text
    assert "luma.redirect_from: www.a.test" in r.text


@pytest.mark.parametrize("web, api_, line, words", [
    ("", "", 10, "host 'a.test' is claimed by services 'web' and 'api'"),  # neither has paths
    ("      paths: [/api]\n", "      paths: [/x, /API]\n", 13, "path '/api' of host 'a.test' is claimed"),
    ("      redirect_from: [www.a.test]\n", "      redirect_from: [www.a.test]\n      paths: [/x]\n", 11,
     "host 'www.a.test' is claimed"),
    ("", "      paths: [/api/]\n", 12, "path '/api/' is not a path prefix"),
    ("", "      paths: ['/{http.request.host}']\n", 12, "is not a path prefix"),
    ("", "      paths: [/api]\n      strip_prefix: 'yes'\n", 13, "strip_prefix"),
    ("", "      strip_prefix: true\n", 10, "strip_prefix: true needs `paths`"),
    ("      redirect_from: ['{http.request.host}']\n", "      paths: [/x]\n", 7, "not a valid DNS name"),
    ("      redirect_from: [a.test]\n", "      paths: [/x]\n", 5, "both in hosts and in redirect_from"),
])
def test_check_reports_conflicting_or_hostile_paths_and_redirects_with_file_and_line(web, api_, line, words):
    r = check(compose(web, api_))
    assert not r.ok
    assert any(words in p.message and p.line == line for p in r.problems), [(p.line, p.message) for p in r.problems]
    assert all(p.hint for p in r.problems)


def test_check_refuses_a_redirect_to_a_wildcard_first_host():
    r = check("services:\n  web:\n    image: x\n    x-luma:\n      hosts: ['*.a.test', a.test]\n      port: 80\n"
              "      redirect_from: [www.b.test]\n")
    assert [p.message for p in r.problems] == [
        "service 'web': x-luma: redirect_from goes to the first of hosts, and '*.a.test' is a wildcard: "
        "list a host name first"]


@pytest.mark.parametrize("paths, strip, health, want", [
    ((), False, "/up", "/up"),
    (("/api",), True, "/up", "/api/up"),            # stripped: the service gets /up
    (("/api",), False, "/api/up", "/api/up"),       # under its prefix: reaches it as written
    (("/api",), False, "/up", None),                # /up goes to another service: not checked, said so
    (("/api",), False, "/apix/up", None),
])
def test_deploy_checks_a_service_with_paths_through_a_path_that_reaches_it(paths, strip, health, want):
    from luma_compose.deploy.plan import proxy_check_path
    r = contract.RoutedService("api", ("a.test",), 3000, health, paths, strip)
    assert proxy_check_path(r) == want
