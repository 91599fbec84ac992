"""Issue 22 items 1 and 2 on one host: paths (longest prefix, /api never /apix, strip_prefix as the
app sees it) and redirects (308, Location with path and query, one redirect from plain HTTP to
HTTPS, a certificate for the redirect host), through the real proxy on the real engine; and the
hostile class: another project's paths and redirects under a host it does not own, label values
that try to inject Caddy placeholders. Unique names; everything removed, pass or fail."""

from __future__ import annotations

import http.client
import json
import socket
import ssl

import pytest

import dockerkit as dk
import proxykit as pk
from luma_compose import contract

pytestmark = pytest.mark.e2e

#: Every service serves files that name it and the path it was asked for: "<service> /<file>".
FILES = "index.html x apix api/index.html api/x api/v2/x"
SERVE = ["sh", "-c", "mkdir -p /www/api/v2 && for f in " + FILES + "; do echo \"$$SERVICE /$$f\" > /www/$$f; done"
         " && echo ok > /www/up && exec httpd -f -p 3000 -h /www"]


def shop_services(host: str) -> dict:
    return {
        "web": {"hosts": [host], "command": SERVE, "x_luma": {"redirect_from": [f"www.{host}"]}},
        "api": {"hosts": [host], "command": SERVE, "x_luma": {"paths": ["/api"], "strip_prefix": True}},
        "v2": {"hosts": [host], "command": SERVE, "x_luma": {"paths": ["/api/v2"]}},
    }


def request(port: int, host: str, path: str) -> tuple[int, str, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace").strip(), r.getheader("Location")
    finally:
        conn.close()


def shop_is_served(port: int, host: str) -> dict:
    """What each class of request gets (all must hold; a dict shows every miss at once)."""
    want = {
        "/": (200, "web /index.html", None),
        "/apix": (200, "web /apix", None),               # /api never matches /apix
        "/api": (200, "api /index.html", None),          # stripped to /
        "/api/x": (200, "api /x", None),                 # stripped: the app sees /x
        "/API/x": (200, "api /x", None),                 # prefixes ignore case, as Caddy's matcher
        "/api/v2/x": (200, "v2 /api/v2/x", None),        # the longest prefix wins, not stripped
    }
    got = {p: request(port, host, p) for p in want}
    code, _, location = request(port, f"www.{host}", "/a/b?c=d&e")
    got["www"], want["www"] = (code, location), (308, f"http://{host}:{port}/a/b?c=d&e")
    return {k: (got[k], want[k]) for k in want if got[k] != want[k]}


def test_paths_strip_prefix_and_redirects_and_no_other_project_can_take_them(tmp_path, busybox_image, caddy_image):
    shop, evil = dk.unique("rpshop"), dk.unique("rpevil")
    host = f"{shop}.test"
    with pk.proxy(pk.SHARED, caddy_image, "--tls", "off") as proxy, \
            pk.project(pk.SHARED, tmp_path, shop, busybox_image, shop_services(host)):
        proxy.sync(check=True)
        assert pk.wait_for(lambda: not shop_is_served(proxy.port, host), timeout=30) is True, \
            shop_is_served(proxy.port, host)
        routes = {r["service"]: r for r in proxy.routes()["routes"]}
        assert routes["api"]["paths"] == ["/api"] and routes["api"]["strip_prefix"] is True
        assert (routes["web"]["redirect_from"], routes["web"]["redirect_to"]) == ([f"www.{host}"], host)

        # Another project: a path under the shop's host, the shop's redirect host, a label value
        # that tries to be a Caddy placeholder. None of it is served; the shop is untouched.
        hostile = {
            "grab": {"hosts": [host], "command": SERVE, "x_luma": {"paths": ["/admin", "/api/v2/x"]}},
            "redir": {"hosts": [f"{evil}.test"], "command": SERVE, "x_luma": {"redirect_from": [f"www.{host}"]}},
            "inject": {"hosts": [f"inject.{evil}.test"], "command": SERVE,
                       "labels": {contract.LABEL_PATHS: "/{http.request.host}"}},
        }
        with pk.project(pk.SHARED, tmp_path, evil, busybox_image, hostile) as ev:
            plan = pk.SHARED.cli("deploy", "--dry-run", "--format", "json", "-f", str(ev.file), "-p", evil,
                                 "--proxy-name", proxy.name, check=False)
            assert plan.returncode == 1, plan.stdout + plan.stderr  # deploy would refuse, and says why
            refused = " ".join(json.loads(plan.stdout)["conflicts"])
            assert f"host {host} (service grab)" in refused and f"host www.{host} (service redir)" in refused
            r = proxy.sync()
            assert r.returncode == 1 and "conflict:" in r.stderr, r.stderr  # conflicts: exit 1, synced
            table = proxy.routes()
            conflicts = {(c["kind"], c["key"], c["loser"]) for c in table["conflicts"]}
            assert conflicts == {("host", host, f"{evil}/grab"), ("host", f"www.{host}", f"{evil}/redir")}
            assert any("luma.paths" in p and "inject" in p for p in table["problems"]), table["problems"]
            assert shop_is_served(proxy.port, host) == {}
            code, body, _ = request(proxy.port, host, "/admin")  # the shop's web (busybox httpd): no such file
            assert code == 404 and "The requested URL was not found" in body
            assert request(proxy.port, f"{evil}.test", "/")[:2] == (200, "redir /index.html")
            assert request(proxy.port, f"inject.{evil}.test", "/")[0] == 404
            status = pk.SHARED.cli("proxy", "status", "--name", proxy.name, check=False)
            assert status.returncode == 1 and f"{evil}/grab claims {host}" in status.stdout + status.stderr
        proxy.sync(check=True)
        assert shop_is_served(proxy.port, host) == {}


def https_request(port: int, sni: str, path: str) -> tuple[int, str | None] | None:
    """A GET over TLS with ``sni`` as server name (the certificate is Caddy's internal CA's: not
    verified here, only that the proxy has one for ``sni``); None until the handshake succeeds."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=sni) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    except (ssl.SSLError, OSError):
        return None
    head = data.decode(errors="replace").partition("\r\n\r\n")[0].split("\r\n")
    location = next((h.split(":", 1)[1].strip() for h in head[1:] if h.lower().startswith("location:")), None)
    return int(head[0].split()[1]), location


def test_with_tls_a_redirect_host_has_a_certificate_and_plain_http_is_redirected_once(
        tmp_path, busybox_image, caddy_image):
    name = dk.unique("rptls")
    host = f"{name}.test"
    services = {"web": {"hosts": [host], "command": SERVE, "x_luma": {"redirect_from": [f"www.{host}"]}}}
    with pk.proxy(pk.SHARED, caddy_image, "--tls", "internal") as proxy, \
            pk.project(pk.SHARED, tmp_path, name, busybox_image, services):
        proxy.sync(check=True)
        https = proxy.published("443/tcp")
        target = f"https://{host}:{https}/a?b=c"
        # a certificate for the redirect host (else the handshake fails), and a 308 to the first host
        assert pk.wait_for(lambda: https_request(https, f"www.{host}", "/a?b=c"), timeout=60) == (308, target)
        assert pk.wait_for(lambda: https_request(https, host, "/"), timeout=60) == (200, None)
        # plain HTTP: straight to https://first-host, not to https://www first
        assert request(proxy.port, f"www.{host}", "/a?b=c")[::2] == (308, target)
        assert request(proxy.port, host, "/a?b=c")[::2] == (308, f"https://{host}:{https}/a?b=c")
