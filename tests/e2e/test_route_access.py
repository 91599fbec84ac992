"""Issue 22 item 3 on one host: `basic_auth` and `allow` through the real proxy, from a client in
another network namespace (a veth to this host: the "internet"), which reaches the proxy's
published port as any outside client does. Real engine, real compose, real Caddy, `deploy`.

What the client's address is at the proxy (measured on this engine, docs/access.md): its own,
through Docker's NAT; a connection Docker relays itself (docker-proxy: a container reaching the
published port, IPv6, the host itself) comes from the proxy's bridge gateway, and an allow list
refuses it whatever it lists.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import subprocess
from pathlib import Path
from typing import Any, Iterator

import bcrypt
import pytest
from ruamel.yaml import YAML

import dockerkit as dk
import proxykit as pk
from luma_compose import api, contract

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse"


@pytest.fixture
def client() -> Iterator[tuple[str, str, str]]:
    """(netns, this host's address on its veth, the client's address): a namespace with a veth to this
    host and a default route through it; removed at the end."""
    ns = f"la{secrets.token_hex(4)}"
    used = subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True).stdout
    octet = next(o for o in (secrets.randbelow(250) + 2 for _ in range(100)) if f"10.254.{o}." not in used)
    host_ip, client_ip = f"10.254.{octet}.1", f"10.254.{octet}.2"
    cmds = [["ip", "netns", "add", ns], ["ip", "link", "add", f"{ns}h", "type", "veth", "peer", "name", f"{ns}c"],
            ["ip", "link", "set", f"{ns}c", "netns", ns], ["ip", "addr", "add", f"{host_ip}/24", "dev", f"{ns}h"],
            ["ip", "link", "set", f"{ns}h", "up"],
            ["ip", "netns", "exec", ns, "ip", "addr", "add", f"{client_ip}/24", "dev", f"{ns}c"],
            ["ip", "netns", "exec", ns, "ip", "link", "set", f"{ns}c", "up"],
            ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
            ["ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", host_ip]]
    try:
        for c in cmds:
            dk.run(c)
        yield ns, host_ip, client_ip
    finally:
        dk.run(["ip", "link", "del", f"{ns}h"], check=False)
        dk.run(["ip", "netns", "del", ns], check=False)


def curl(ns: str, url: str, host: str, *args: str) -> tuple[int, dict[str, str], str]:
    """One GET from the client namespace: (status, lower-cased headers, body)."""
    p = dk.run(["ip", "netns", "exec", ns, "curl", "-sS", "-m", "20", "-D", "-", "-H", f"Host: {host}", *args, url],
               check=False, timeout=60)
    head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    if not lines:
        return 0, {}, p.stderr
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body.strip()


def htpasswd(path: Path, users: dict[str, str]) -> None:
    """What `htpasswd -B` writes ($2y$; Debian's apache2-utils is not a test dependency)."""
    path.write_text("".join(f"{u}:$2y${bcrypt.hashpw(p.encode(), bcrypt.gensalt(5)).decode()[4:]}\n"
                            for u, p in users.items()))


def compose_file(workdir: Path, name: str, image: str, services: dict[str, dict[str, Any]],
                 labels: dict[str, dict[str, str]] | None = None) -> Path:
    """A project rendered by luma-compose (its htpasswd next to it); ``labels`` set over the rendered
    ones afterwards (the attacks)."""
    d = workdir / name
    d.mkdir(parents=True, exist_ok=True)
    htpasswd(d / "users.htpasswd", {"alice": PASSWORD})
    svcs = {s: {"image": image, "environment": {"PROJECT": name, "SERVICE": s},
                "labels": {pk.SELECT_KEY: dk.RUN_ID}, "stop_grace_period": "1s",
                "x-luma": {"hosts": [f"{s}.{name}.test"], "port": 3000, **x}} for s, x in services.items()}
    result = api.render_text(f"<{name}>", json.dumps({"services": svcs}), project=name, project_dir=str(d))
    assert result.ok and result.text, [p.message for p in result.problems]
    doc = YAML(typ="safe").load(result.text)
    for s, extra in (labels or {}).items():
        doc["services"][s]["labels"].update(extra)
    return dk.write(d / "compose.yaml", json.dumps(doc, indent=1))


@contextlib.contextmanager
def down_at_end(name: str, f: Path) -> Iterator[None]:
    try:
        yield
    finally:
        dk.run(["docker", "compose", "-p", name, "-f", str(f), "down", "-v", "--remove-orphans", "--timeout", "1"],
               check=False)
        for net in (contract.ingress_network(name),):
            info = json.loads(dk.docker("network", "inspect", net, check=False) or "[{}]")[0]
            for cid in info.get("Containers") or {}:
                dk.docker("network", "disconnect", "-f", net, cid, check=False)
            dk.docker("network", "rm", net, check=False)


def test_basic_auth_and_allow_from_outside_and_deploys_own_checks_pass(tmp_path, client, busybox_image,
                                                                       caddy_image):
    ns, host_ip, client_ip = client
    name = dk.unique("guarded")
    f = compose_file(tmp_path, name, busybox_image, {
        "auth": {"basic_auth": "./users.htpasswd"},
        # the client's /32, and every private range a Docker bridge lives in: a relayed request
        # (its address is the bridge gateway) is refused all the same
        "lan": {"allow": [f"{client_ip}/32", "172.16.0.0/12", "192.168.0.0/16"]},
        "away": {"allow": ["198.51.100.0/24", "2001:db8::/32"]},
        "both": {"allow": [f"{client_ip}/32"], "basic_auth": "./users.htpasswd"},
        "open": {},
    })
    with pk.proxy(pk.SHARED, caddy_image, "--tls", "off", http_port=f"{host_ip}:0") as proxy, down_at_end(name, f):
        # deploy's own checks go through the proxy (from inside it): never blocked by the guards
        dk.run([*dk.luma_compose_cmd(), "deploy", "-f", str(f), "-p", name, "--proxy-name", proxy.name,
                "--drain", "0", "--settle", "0"], timeout=600)
        url = f"http://{host_ip}:{proxy.port}/"

        def get(service: str, *args: str) -> tuple[int, dict[str, str], str]:
            return curl(ns, url, f"{service}.{name}.test", *args)

        status, headers, body = get("auth")
        assert (status, headers.get("luma-guard")) == (401, "basic_auth"), (status, headers, body)
        assert headers["www-authenticate"].startswith("Basic ")
        assert get("auth", "-u", "alice:wrong")[0] == 401
        assert get("auth", "-u", "mallory:" + PASSWORD)[0] == 401
        assert get("auth", "-u", "alice:" + PASSWORD)[2].startswith(f"{name}/auth/")
        assert get("lan")[2].startswith(f"{name}/lan/")  # the client's own address, via NAT
        status, headers, body = get("away")
        assert (status, headers.get("luma-guard")) == (403, "allow") and "not admitted" in body
        assert get("both")[0] == 401 and get("both", "-u", "alice:" + PASSWORD)[0] == 200
        assert get("open")[2].startswith(f"{name}/open/")

        # a container reaching the published port is relayed by docker-proxy: it arrives from the
        # bridge gateway, which 172.16.0.0/12 covers, and is refused as relayed
        request = f"printf 'GET / HTTP/1.0\\r\\nHost: lan.{name}.test\\r\\n\\r\\n' | nc {host_ip} {proxy.port}"
        p = dk.run(["docker", "run", "--rm", "--label", dk.E2E_LABEL, busybox_image, "sh", "-c", request],
                   check=False, timeout=120)
        assert p.stdout.startswith("HTTP/1.0 403") and "Luma-Guard: allow" in p.stdout, (p.stdout, p.stderr)
        assert "relayed by the proxy's host" in p.stdout and "userland-proxy" in p.stdout

        # routes/status name the users and networks, never a hash
        out = dk.run([*dk.luma_compose_cmd(), "routes", "--name", proxy.name], check=False).stdout
        table = proxy.routes()
        hashes = [line.split(":", 1)[1].strip() for line in (f.parent / "users.htpasswd").read_text().splitlines()]
        labels = json.dumps(dk.docker("inspect", f"{name}-auth-1"))
        b64 = base64.b64encode(hashes[0].encode()).decode()
        assert b64 in labels  # the data plane's copy is in the label ...
        for text in (out, json.dumps(table)):
            assert hashes[0] not in text and b64 not in text and "$2y$" not in text  # ... and nowhere else
        (auth,) = [r for r in table["routes"] if r["service"] == "auth"]
        assert auth["access"] == {"basic_auth": ["alice"]}
        assert f"access: {name}/auth: basic auth (users alice)" in out
        dry = dk.run([*dk.luma_compose_cmd(), "deploy", "--dry-run", "-f", str(f), "-p", name, "--proxy-name",
                      proxy.name], check=False)
        assert b64 not in dry.stdout + dry.stderr and "$2y$" not in dry.stdout + dry.stderr


def test_hostile_access_labels_are_refused_and_other_projects_stay_served(tmp_path, client, busybox_image,
                                                                          caddy_image):
    ns, host_ip, client_ip = client
    good, evil = dk.unique("good"), dk.unique("evil")
    md5 = base64.b64encode(b"$apr1$Vp8B3pQe$Zb8y1mS7wYcl0q0oSbX1e/").decode()
    f_good = compose_file(tmp_path, good, busybox_image, {"web": {"allow": [f"{client_ip}/32"]},
                                                          "auth": {"basic_auth": "./users.htpasswd"}})
    f_evil = compose_file(tmp_path, evil, busybox_image, {"md5": {}, "inject": {}, "huge": {}, "open": {}}, labels={
        "md5": {contract.LABEL_BASIC_AUTH: f"alice:{md5}"},
        "inject": {contract.LABEL_ALLOW: "0.0.0.0/0\"]}},{\"remote_ip\":{\"ranges\":[\"{http.request.host}"},
        "huge": {contract.LABEL_ALLOW: ",".join(f"10.{i // 256}.{i % 256}.0/24" for i in range(5000))},
    })
    with pk.proxy(pk.SHARED, caddy_image, "--tls", "off", http_port=f"{host_ip}:0") as proxy, \
            down_at_end(good, f_good), down_at_end(evil, f_evil):
        for n, f in ((good, f_good), (evil, f_evil)):
            dk.run(["docker", "compose", "-p", n, "-f", str(f), "up", "-d", "--quiet-pull"], timeout=300)
        proxy.sync(check=False)
        url = f"http://{host_ip}:{proxy.port}/"
        table = proxy.routes()
        assert {r["service"] for r in table["routes"] if r["project"] == evil} == {"open"}
        problems = "\n".join(table["problems"])
        for service, why in (("md5", "MD5"), ("inject", "not an IP network"), ("huge", "more than")):
            assert f"{evil}-{service}-1" in problems and why in problems, problems
        for service in ("md5", "inject", "huge"):  # never served unguarded: an unknown host
            assert curl(ns, url, f"{service}.{evil}.test")[0] == 404
        assert curl(ns, url, f"open.{evil}.test")[0] == 200
        assert curl(ns, url, f"web.{good}.test")[2].startswith(f"{good}/web/")
        assert curl(ns, url, f"auth.{good}.test")[0] == 401
        assert curl(ns, url, f"auth.{good}.test", "-u", "alice:" + PASSWORD)[0] == 200


def test_deploy_with_tls_takes_the_guards_own_answer_as_served(tmp_path, busybox_image, caddy_image):
    """With TLS, deploy checks each host over HTTPS from this machine (through docker-proxy: the
    request is relayed, and has no password): the guard's 401/403 (`Luma-Guard`) means served."""
    name = dk.unique("guardtls")
    f = compose_file(tmp_path, name, busybox_image, {"auth": {"basic_auth": "./users.htpasswd"},
                                                     "lan": {"allow": ["203.0.113.0/24"]}})
    with pk.proxy(pk.SHARED, caddy_image, "--tls", "internal") as proxy, down_at_end(name, f):
        p = dk.run([*dk.luma_compose_cmd(), "deploy", "-f", str(f), "-p", name, "--proxy-name", proxy.name,
                    "--drain", "0", "--settle", "0"], check=False, timeout=600)
        assert p.returncode == 0, (p.stdout, p.stderr)
        routes = {r["service"]: r.get("access") for r in proxy.routes()["routes"] if r["project"] == name}
        assert routes == {"auth": {"basic_auth": ["alice"]}, "lan": {"allow": ["203.0.113.0/24"]}}
