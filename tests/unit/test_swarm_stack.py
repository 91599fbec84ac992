"""Swarm output mode of render, swarm checks, and swarm routes -> Caddy config (pure)."""

from __future__ import annotations

from dataclasses import replace

from luma_compose import api
from luma_compose.compose.source import parse
from luma_compose.records import Mount, ServiceNetwork, ServiceRecord
from luma_compose.routing import services
from luma_compose.routing.claims import RouteTable
from luma_compose.compose import stack
from luma_compose.swarm import routes, shadow

SRC = """\
name: shop
services:
  web:
    image: x
    # keep me
    x-luma: {hosts: [shop.test], port: 3000}
    deploy:
      replicas: 2
  worker:
    image: x
"""


def _stack(text: str) -> str:
    r = api.render_text("c.yaml", text)
    assert r.ok, r.problems
    return stack.to_stack(r.source, r.text, r.project, r.routes)


def test_stack_output() -> None:
    out = _stack(SRC)
    assert not out.startswith("name:") and "# keep me" in out
    assert "    driver: overlay\n    attachable: true\n" in out
    assert "      replicas: 2\n      endpoint_mode: dnsrr\n      update_config:\n        order: start-first\n" in out
    assert "        luma.target: shop-web:3000\n" in out
    assert "worker:\n    image: x\n" in out


def test_stack_output_is_idempotent() -> None:
    once = _stack(SRC)
    r = api.render_text("c.yaml", once, project="shop")
    assert stack.to_stack(r.source, r.text, r.project, r.routes) == once


def test_checks() -> None:
    src, _ = parse("c.yaml", "services:\n  a:\n    build: .\n    restart: always\n  b:\n    depends_on:\n"
                   "      a: {condition: service_started}\n")
    ps = stack.problems(src)
    warns = sorted(p.message for p in ps if stack.is_warning(p))
    errs = [p.message for p in ps if not stack.is_warning(p)]
    assert len(warns) == 2 and "`build`" in warns[0] and "`restart`" in warns[1]
    assert len(errs) == 1 and "rejected" in errs[0]


def _svc(name, project, service, hosts, created):
    return ServiceRecord(name, labels={
        "luma.managed": "true", "luma.project": project, "luma.service": service, "luma.hosts": hosts,
        "luma.port": "3000", "luma.network": f"{project}_luma", "com.docker.stack.namespace": project},
        created=created)


def test_routes_conflicts_and_config() -> None:
    t = services.table([_svc("b_web", "b", "web", "x.test", "2"), _svc("a_web", "a", "web", "x.test,y.test", "1"),
                      ServiceRecord("plain")])
    assert [r.project for r in t.serving] == ["a"] and "b/web claims x.test" in t.messages[0]
    cfg = routes.edge_config(t, 8080, "px")
    server = cfg["apps"]["http"]["servers"]["luma"]
    h = server["routes"][0]["handle"][0]
    # the edge sends a's hosts to a's gateway, naming the target; nothing else is routed
    assert h["dynamic_upstreams"] == {"source": "a", "name": "px-gw-a.", "port": "8080", "refresh": "1s"}
    assert h["headers"]["request"]["set"] == {"Luma-Alias": ["a-web"], "Luma-Port": ["3000"]}
    assert server["routes"][0]["match"] == [{"host": ["x.test", "y.test"]}]
    assert server["routes"][-1]["handle"][0]["status_code"] == 404
    # no admin API; the config is pulled from the config server, verified with the pinned cert
    assert cfg["admin"]["disabled"] is True
    load = cfg["admin"]["config"]["load"]
    assert load["url"] == "https://px-config:8443/edge.json"
    assert load["tls"]["root_ca_pem_files"] == [routes.CONTROL_CERT_TARGET]
    assert routes.boot_config(8080, "px")["admin"] == cfg["admin"], "boot and pulled configs keep pulling"
    # the version names the routes: another table, another version
    other = routes.edge_config(services.table([_svc("b_web", "b", "web", "x.test", "2")]), 8080, "px")
    assert routes.edge_version(cfg) != routes.edge_version(other)
    assert routes.edge_version(cfg) == routes.edge_version(routes.edge_config(t, 8080, "px"))
    assert routes.config_name("p", "x") == routes.config_name("p", "x") != routes.config_name("p", "y")


def test_swarm_routes_refuse_label_values_the_container_proxy_refuses():
    from luma_compose import contract
    from luma_compose.routing.services import route_of

    labels = {**contract.route_labels("gmail", "web", ["mail.example.com"], 3000, "/up"),
              "com.docker.stack.namespace": "gmail"}
    ok = ServiceRecord("gmail_web", labels=labels)
    assert route_of(ok) is not None
    for bad in ("{http.request.host}", "mail.example.com{env.NOPE}", "${HOST}"):
        assert route_of(ServiceRecord("evil_web", labels={**labels, contract.LABEL_HOSTS: bad})) is None


def test_a_swarm_service_routes_only_for_its_own_stack():
    from luma_compose import contract
    from luma_compose.routing.services import route_of

    labels = {**contract.route_labels("gmail", "web", ["mail.example.com"], 3000, "/up"),
              "com.docker.stack.namespace": "gmail"}
    assert route_of(ServiceRecord("gmail_web", labels=labels)) is not None
    # another stack copying gmail's labels, or a hand-made service, never passes as gmail's web
    assert route_of(ServiceRecord("evil_web", labels={**labels, "com.docker.stack.namespace": "evil"})) is None
    assert route_of(ServiceRecord("evil_web", labels=labels)) is None
    no_stack = {k: v for k, v in labels.items() if k != "com.docker.stack.namespace"}
    assert route_of(ServiceRecord("gmail_web", labels=no_stack)) is None


def _stack_svc(project, service, routed_hosts=None, networks=(), created="1"):
    labels = {"com.docker.stack.namespace": project}
    if routed_hosts:
        labels.update({"luma.managed": "true", "luma.project": project, "luma.service": service,
                       "luma.hosts": routed_hosts, "luma.port": "3000", "luma.network": f"{project}_luma"})
    return ServiceRecord(f"{project}_{service}", labels=labels, created=created,
                         networks=tuple(ServiceNetwork(f"id-{net}", tuple(aliases)) for net, aliases in networks))


def test_only_a_service_a_gateway_or_an_edge_could_resolve_can_shadow_a_project():
    nets = {f"id-{n}": n for n in ("gmail_luma", "evil_luma", "px_edge")}
    gmail = _stack_svc("gmail", "web", "mail.test", [("gmail_luma", ["gmail-web"])])
    evil = _stack_svc("evil", "web", "evil.test", [("evil_luma", ["evil-web"])])
    base = services.table([gmail, evil])

    def routed(*extra):
        t = shadow.drop_shadowed(base, [gmail, evil, *extra], nets, "px")
        return sorted(r.project for r in t.serving), t.messages

    assert routed() == (["evil", "gmail"], [])
    # On its own overlay, evil may call anything `gmail-web`: only evil's gateway resolves names
    # there, and it forwards to evil-* targets only.
    decoy = _stack_svc("evil", "decoy", None, [("evil_luma", ["gmail-web"])])
    assert routed(decoy) == (["evil", "gmail"], [])
    assert routed(_stack_svc("evil", "gmail-web", None, [("evil_luma", [])])) == (["evil", "gmail"], [])
    # On gmail's overlay, gmail's gateway would resolve it: gmail's routes are withheld (404).
    intruder = _stack_svc("evil", "x", None, [("gmail_luma", ["gmail-web"])])
    got, why = routed(intruder)
    assert got == ["evil"] and any("evil_x answers to gmail-web" in c and "withheld" in c for c in why)
    # On the edge network: posing as gmail's target or as gmail's gateway withholds gmail's routes.
    for alias in ("gmail-web", "px-gw-gmail"):
        got, why = routed(_stack_svc("evil", "y", None, [("px_edge", [alias])]))
        assert got == ["evil"], (alias, got)
    # Posing as the config server is reported (the edges do not trust it: TLS).
    got, why = routed(_stack_svc("evil", "z", None, [("px_edge", ["px-config"])]))
    assert got == ["evil", "gmail"] and any("px-config" in c for c in why)


def test_gateway_forwards_only_to_its_own_projects_targets():
    import re

    cfg = routes.gateway_config("shop")
    server = cfg["apps"]["http"]["servers"]["gateway"]
    m = server["routes"][0]["match"][0]["header_regexp"]
    alias = re.compile(m["Luma-Alias"]["pattern"])
    port = re.compile(m["Luma-Port"]["pattern"])
    assert alias.search("shop-web") and alias.search("shop-api.v2")
    for bad in ("shop", "shop-", "shopx-web", "evil-web", "shop-web:80", "x.shop-web", "shop-a/b", "{x}"):
        assert not alias.search(bad), bad
    assert port.search("3000") and not port.search("0") and not port.search("123456")
    h = server["routes"][0]["handle"][0]
    assert h["headers"]["request"]["delete"] == ["Luma-Alias", "Luma-Port"]
    assert server["routes"][-1]["handle"][0]["status_code"] == 421
    assert cfg["admin"]["disabled"] is True
    assert routes.gateway_name("px", "a" * 80) != routes.gateway_name("px", "a" * 81)
    assert len(routes.gateway_name("px", "a" * 80)) <= 63


def test_control_certificate_names_the_config_server():
    from cryptography import x509

    from luma_compose.swarm import control_tls

    cert_pem, key_pem = control_tls.make("px-config")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["px-config"]
    assert "PRIVATE KEY" in key_pem and control_tls.make("px-config")[0] != cert_pem


def test_edge_tls_config_is_the_single_host_layout_with_shared_storage():
    from luma_compose.proxy import caddy_config

    t = services.table([_svc("a_web", "a", "web", "x.test,y.test", "1")])
    tls = routes.EdgeTLS("acme", 8443, "ops@x.test", "https://ca.test/dir", True)
    cfg = routes.edge_config(t, 8080, "px", tls)
    servers = cfg["apps"]["http"]["servers"]
    assert servers["luma"]["listen"] == [":8443"] and servers["luma_http"]["listen"] == [":8080"]
    # plain HTTP: known hosts redirected (to the HTTPS port), the rest 404 with the version
    redirect, nf = servers["luma_http"]["routes"]
    assert redirect["match"] == [{"host": ["x.test", "y.test"]}]
    assert redirect["handle"][0]["headers"]["Location"] == ["https://{http.request.host}:8443{http.request.uri}"]
    assert nf["handle"][0]["headers"]["Luma-Config"] == [routes.edge_version(cfg)]
    policy, catch_all = cfg["apps"]["tls"]["automation"]["policies"]
    assert catch_all == {"issuers": policy["issuers"]}, "any edge answers a challenge from the shared storage"
    assert policy["subjects"] == ["x.test", "y.test"]
    assert policy["issuers"] == [{"module": "acme", "email": "ops@x.test", "ca": "https://ca.test/dir",
                                  "trusted_roots_pem_files": [routes.ACME_ROOT_TARGET],
                                  "challenges": {"tls-alpn": {"disabled": True}}}]
    assert cfg["storage"] == {"module": "file_system", "root": "/data/caddy"}
    assert cfg["admin"] == routes.boot_config(8080, "px")["admin"], "it keeps pulling"
    # the same as one host's proxy would do for these hosts (one layout, caddy_config.assemble)
    single = caddy_config.assemble(servers["luma"]["routes"][:-1], ["x.test", "y.test"], tls="acme",
                                   email="ops@x.test", http_port=8080, https_port=8443, acme_ca="https://ca.test/dir",
                                   acme_ca_root=routes.ACME_ROOT_TARGET, tls_alpn=False,
                                   not_found=servers["luma"]["routes"][-1], catch_all=True)
    assert single["apps"] == cfg["apps"]
    # with no host yet, the catch-all is there already: the first host's challenge can reach any edge
    empty = routes.edge_config(RouteTable(), 8080, "px", tls)
    assert empty["apps"]["tls"]["automation"]["policies"] == [catch_all]
    # TLS settings are part of the version; off has no storage and no tls app
    off = routes.edge_config(t, 8080, "px")
    assert "storage" not in off and "tls" not in off["apps"] and routes.edge_version(off) != routes.edge_version(cfg)


def test_tls_on_a_swarm_needs_shared_storage():
    import pytest

    from luma_compose.errors import UsageError
    from luma_compose.swarm import options, proxy

    with pytest.raises(UsageError) as e:  # the user's option: exit 2, as on one host
        proxy.SwarmProxy(engine=None).up(tls=routes.EdgeTLS("acme"))  # refused before any engine call
    assert "--storage" in e.value.hint
    assert options.storage_mount("/srv/luma") == Mount("bind", "/srv/luma", "/data")
    assert options.storage_mount("luma-certs") == Mount("volume", "luma-certs", "/data")
    with pytest.raises(UsageError):  # the user's option: exit 2, as on one host
        options.storage_mount("a,b=c")


def test_a_name_shadows_whatever_its_case_or_trailing_dot():
    """Docker's DNS answers `VICTIM-WEB.` for `victim-web`: so does the shadow check, for the target
    alias on P_luma and on the edge network and for the gateway name on the edge network."""
    nets = {f"id-{n}": n for n in ("gmail_luma", "px_edge")}
    gmail = _stack_svc("gmail", "web", "mail.test", [("gmail_luma", ["gmail-web"])])
    base = services.table([gmail])
    for net, name in [("gmail_luma", "gmail-web"), ("px_edge", "gmail-web"), ("px_edge", "px-gw-gmail")]:
        for spelled in (name.upper(), name.title(), name + ".", name.upper() + ".", name[0].upper() + name[1:]):
            intruder = _stack_svc("evil", "x", None, [(net, [spelled])])
            t = shadow.drop_shadowed(base, [gmail, intruder], nets, "px")
            assert not t.serving, (net, spelled)
            assert [r.project for r in t.withheld] == ["gmail"]
            assert any(f"evil_x answers to {spelled}" in c and "withheld" in c for c in t.messages), t.messages
    # a service *named* like the target (its stack's short name is its DNS name) counts as well
    named = _stack_svc("evil", "GMAIL-WEB", None, [("gmail_luma", [])])
    assert not shadow.drop_shadowed(base, [gmail, named], nets, "px").serving
    # two services whose aliases differ in case only are one name: the later one is not routed
    t = services.table([_svc("a_web", "a", "web", "x.test", "1"), _svc("a_Web", "a", "Web", "y.test", "2")])
    assert [r.service for r in t.serving] == ["web"] and "target alias a-Web" in t.messages[0]


def test_a_plain_container_on_the_overlay_withholds_the_project_and_is_named():
    nets = {f"id-{n}": n for n in ("gmail_luma", "evil_luma", "px_edge")}
    gmail = _stack_svc("gmail", "web", "mail.test", [("gmail_luma", ["gmail-web"])])
    evil = _stack_svc("evil", "web", "evil.test", [("evil_luma", ["evil-web"])])
    base = services.table([gmail, evil])
    t = shadow.drop_shadowed(base, [gmail, evil], nets, "px", {"gmail_luma": ["container sneaky is attached"]})
    assert [r.project for r in t.serving] == ["evil"] and [r.project for r in t.withheld] == ["gmail"]
    assert any("container sneaky" in c and "routes of gmail are withheld" in c for c in t.messages)
    # one on the edge network could answer to any gateway's name: every project is withheld
    t = shadow.drop_shadowed(base, [gmail, evil], nets, "px", {"px_edge": ["container x is attached"]})
    assert not t.serving and sorted(r.project for r in t.withheld) == ["evil", "gmail"]


def test_a_route_on_another_projects_network_is_refused():
    bad = _svc("evil_web", "evil", "web", "evil.test", "1")
    bad.labels["luma.network"] = "gmail_luma"
    t = services.table([_svc("gmail_web", "gmail", "web", "mail.test", "2"), bad])
    assert [r.project for r in t.serving] == ["gmail"]
    assert "evil/web asks for the network gmail_luma" in t.messages[0] and "evil_luma only" in t.messages[0]


def _edge_hosts(cfg):
    """[(hosts, gateway or 404)] in the order the edge matches them."""
    out = []
    for r in cfg["apps"]["http"]["servers"]["luma"]["routes"][:-1]:
        h = r["handle"][0]
        out.append((r["match"][0]["host"], h["dynamic_upstreams"]["name"] if "dynamic_upstreams" in h
                    else h["status_code"]))
    return out


def test_exact_hosts_win_over_wildcards_whichever_route_they_are_in():
    victim = _svc("victim_web", "victim", "web", "app.example.test", "1")
    for evil_hosts in ("*.example.test,evil.example.test", "evil.example.test,*.example.test", "*.example.test"):
        evil = _svc("aaa_web", "aaa", "web", evil_hosts, "2")  # sorts before the victim
        order = _edge_hosts(routes.edge_config(services.table([victim, evil]), 8080, "px"))
        first_wild = next(i for i, (hosts, _) in enumerate(order) if any(h.startswith("*.") for h in hosts))
        assert all(not h.startswith("*.") for hosts, _ in order[:first_wild] for h in hosts)
        assert (["app.example.test"], "px-gw-victim.") in order[:first_wild], order
        assert all(h.startswith("*.") for hosts, _ in order[first_wild:] for h in hosts), order
    # a host written in upper case is the same host: it clashes, and the older claim keeps it
    t = services.table([victim, _svc("aaa_web", "aaa", "web", "APP.example.test", "2")])
    assert [r.project for r in t.serving] == ["victim"] and "claims app.example.test" in t.messages[0]
    # a withheld owner keeps its hosts (404), before any wildcard
    t = services.table([victim, _svc("aaa_web", "aaa", "web", "*.example.test", "2")])
    t = RouteTable(tuple(replace(r, withheld="shadowed") if r.project == "victim" else r for r in t.routes))
    assert _edge_hosts(routes.edge_config(t, 8080, "px")) == [(["app.example.test"], 404),
                                                            (["*.example.test"], "px-gw-aaa.")]
