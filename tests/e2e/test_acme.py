"""Issue 12.3: automatic HTTPS (``--tls acme``, the default) against a real ACME server.

Pebble (Debian's ``pebble``, the ACME test server by Let's Encrypt) runs for this test only, on the
gateway address of a network the test creates; its HTTPS is signed by a throwaway root the test makes
with openssl, handed to the proxy with ``--acme-ca-root``. Pebble resolves names through
``pebble-challtestsrv`` (same package) on 127.0.0.1, which answers the test's good host names with the
proxy's address on the test network and every other name with a container that listens on nothing:
the mapping exists only for Pebble, nothing on this machine resolves those names.

Shown: a routed host gets a certificate through HTTP-01 answered by the proxy; HTTPS serves it,
verified with Pebble's root (no "insecure"); `proxy up` with new options recreates the proxy and it
keeps the same certificate (Pebble gets no new order); a host that cannot be validated does not stop
another host added with it; `proxy status` shows each host's certificate state and expiry.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

import dockerkit as dk
from test_proxy import cli, compose_text, proxy_container


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def free_udp_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def make_ca(d: Path, ip: str) -> tuple[Path, Path, Path]:
    """A throwaway root and a server certificate for Pebble's own HTTPS at ``ip``."""
    def ssl_(*args: str) -> None:
        dk.run(["openssl", *args], timeout=60)

    ssl_("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"),
         "-days", "2", "-subj", "/CN=luma-compose test ACME root")
    ssl_("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "csr.pem"),
         "-subj", "/CN=pebble")
    (d / "ext.cnf").write_text(f"subjectAltName=IP:{ip},DNS:pebble\n")
    ssl_("x509", "-req", "-in", str(d / "csr.pem"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
         "-CAcreateserial", "-out", str(d / "cert.pem"), "-days", "2", "-extfile", str(d / "ext.cnf"))
    return d / "ca.pem", d / "cert.pem", d / "key.pem"


class Pebble:
    def __init__(self, workdir: Path, gateway: str, default_ip: str):
        self.dir = workdir
        self.gw = gateway
        self.ca, cert, key = make_ca(workdir, gateway)
        self.acme_port, self.mgmt_port = free_port(gateway), free_port(gateway)
        self.dns_port, self.dns_mgmt = free_udp_port("127.0.0.1"), free_port("127.0.0.1")
        cfg = {"pebble": {"listenAddress": f"{gateway}:{self.acme_port}",
                          "managementListenAddress": f"{gateway}:{self.mgmt_port}",
                          "certificate": str(cert), "privateKey": str(key), "httpPort": 80, "tlsPort": 443,
                          "ocspResponderURL": "", "externalAccountBindingRequired": False}}
        (workdir / "pebble.json").write_text(json.dumps(cfg))
        self.log = workdir / "pebble.log"
        self.procs: list[subprocess.Popen] = []
        self.default_ip = default_ip

    @property
    def directory(self) -> str:
        return f"https://{self.gw}:{self.acme_port}/dir"

    def start(self) -> None:
        dns = subprocess.Popen(
            ["pebble-challtestsrv", "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
             "-tlsalpn01", "", "-management", f"127.0.0.1:{self.dns_mgmt}", "-defaultIPv4", self.default_ip,
             "-defaultIPv6", ""],
            stdout=open(self.dir / "challtestsrv.log", "w"), stderr=subprocess.STDOUT)
        self.procs.append(dns)
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        pebble = subprocess.Popen(["pebble", "-config", str(self.dir / "pebble.json"), "-dnsserver",
                                   f"127.0.0.1:{self.dns_port}"], stdout=open(self.log, "w"),
                                  stderr=subprocess.STDOUT, env=env)
        self.procs.append(pebble)
        ctx = ssl.create_default_context(cafile=str(self.ca))
        for _ in range(100):
            try:
                urllib.request.urlopen(self.directory, context=ctx, timeout=2).read()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"pebble did not answer at {self.directory}:\n{self.log.read_text()}")

    def add_a(self, host: str, ip: str) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.dns_mgmt}/add-a", method="POST",
                                     data=json.dumps({"host": host, "addresses": [ip]}).encode())
        urllib.request.urlopen(req, timeout=5).read()

    def root(self) -> str:
        """The root Pebble signs certificates with (random per run)."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        return urllib.request.urlopen(f"https://{self.gw}:{self.mgmt_port}/roots/0", context=ctx,
                                      timeout=5).read().decode()

    def orders(self) -> int:
        found = re.findall(r"There are now (\d+) orders in the db", self.log.read_text())
        return int(found[-1]) if found else 0

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


@contextlib.contextmanager
def pebble(workdir: Path, gateway: str, default_ip: str) -> Iterator[Pebble]:
    for tool in ("pebble", "pebble-challtestsrv", "openssl"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: scripts/test installs Debian's pebble and openssl", pytrace=False)
    p = Pebble(workdir, gateway, default_ip)
    try:
        p.start()
        yield p
    finally:
        p.stop()


def https_get(port: int, host: str, root: Path) -> tuple[int, str, str]:
    """GET / over HTTPS at 127.0.0.1:port for ``host``, verified with ``root``: (status, body, cert serial)."""
    ctx = ssl.create_default_context(cafile=str(root))
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    # SNI and certificate check for the host name, while connecting to 127.0.0.1
    conn._create_connection = lambda addr, *a, **k: socket.create_connection(("127.0.0.1", port), *a[:1])  # type: ignore[attr-defined]
    conn.host = host
    try:
        conn.request("GET", "/", headers={"Host": host})
        r = conn.getresponse()
        cert = conn.sock.getpeercert()
        return r.status, r.read().decode().strip(), str(cert.get("serialNumber"))
    finally:
        conn.close()


def wait_https(port: int, host: str, root: Path, timeout: float = 90) -> tuple[int, str, str]:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            return https_get(port, host, root)
        except (OSError, ssl.SSLError, http.client.HTTPException) as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"https://{host} never verified with Pebble's root: {last!r}")


def config_diff(proxy: str) -> str:
    """Loaded vs desired Caddy config of a proxy (for a failure message)."""
    import difflib

    from luma_compose.engine.docker_engine import DockerEngine
    from luma_compose.proxy import caddy_config
    from luma_compose.proxy.controller import Controller

    c = Controller(DockerEngine(), proxy)
    table, cur = c.table(c.proxy.running())
    want = json.loads(caddy_config.dumps(c.desired(table)))
    a = json.dumps(cur, sort_keys=True, indent=1).splitlines()
    b = json.dumps(want, sort_keys=True, indent=1).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "loaded", "desired", lineterm="")) + "\n"


def attach(network: str, container: str) -> str:
    dk.docker("network", "connect", network, container, check=False)
    return dk.container_ips(container)[network]


def test_acme_certificates_from_a_real_acme_server(caddy_image, busybox_image, tmp_path, compose):
    net = dk.unique("acmenet")
    with dk.network(net), dk.container(dk.unique("blackhole"), busybox_image, networks=[net],
                                       cmd=["sleep", "600"]) as hole:
        gw = dk.inspect(net)["IPAM"]["Config"][0]["Gateway"]
        with pebble(tmp_path, gw, dk.container_ips(hole)[net]) as acme, \
                proxy_container(caddy_image, "--tls", "acme", "--acme-ca", acme.directory,
                                "--acme-ca-root", str(acme.ca)) as px:
            ports_before = dk.docker("port", px.name)
            proxy_ip = attach(net, px.name)
            ports_after = dk.docker("port", px.name)
            project = dk.unique("acme")
            good, good2, bad = (f"{p}.{project}.test" for p in ("good", "later", "bad"))
            acme.add_a(good, proxy_ip)
            acme.add_a(good2, proxy_ip)
            text = compose_text(project, busybox_image, {"web": {"hosts": [good]}})
            compose(project, [Path("-")], directory=tmp_path, stdin=text)
            px.sync()
            root = tmp_path / "pebble-root.pem"
            root.write_text(acme.root())

            status, body, serial = wait_https(px.https_port(), good, root)
            assert status == 200 and body.startswith(f"{project}/web/")
            logs = dk.run(["docker", "logs", px.name], check=False).stderr
            assert '"challenge_type":"http-01"' in logs and "tls-alpn-01" not in logs.split("certificate obtained")[0]
            r = cli("proxy", "status", "--name", px.name, "--format", "json", check=False)
            assert r.returncode == 0, ports_before + ports_after + dk.docker("port", px.name) + config_diff(px.name)
            st = json.loads(r.stdout)
            certs = {c["host"]: c for c in st["proxy"]["certificates"]}
            assert certs[good]["state"] == "valid" and certs[good]["not_after"] > time.strftime("%Y-%m-%dT")
            orders = acme.orders()
            assert orders >= 1

            # new options recreate the proxy; the certificate stays on the volume: no new order
            px.args += ["--email", "ops@example.test"]
            r = px.up()
            assert "started" in r.stdout
            attach(net, px.name)
            status, body, serial2 = wait_https(px.https_port(), good, root)
            assert status == 200 and serial2 == serial
            assert acme.orders() == orders

            # a host that cannot be validated does not hold up another one added with it
            text = compose_text(project, busybox_image, {"web": {"hosts": [good]}, "later": {"hosts": [good2]},
                                                         "broken": {"hosts": [bad]}})
            dk.run(["docker", "compose", "-p", project, "--project-directory", str(tmp_path), "-f", "-", "up", "-d"],
                   input=text)
            px.sync()
            status, body, _ = wait_https(px.https_port(), good2, root)
            assert status == 200 and body.startswith(f"{project}/later/")
            assert https_get(px.https_port(), good, root)[0] == 200
            with pytest.raises((ssl.SSLError, OSError)):
                https_get(px.https_port(), bad, root)
            deadline = time.monotonic() + 30
            while True:
                r = cli("proxy", "status", "--name", px.name, check=False)
                lines = {ln.split(":", 1)[0].strip(): ln for ln in r.stdout.splitlines() if ln.startswith("  ")}
                if "none:" in lines.get(bad, "") or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert "valid until" in lines[good] and "valid until" in lines[good2], r.stdout
            assert bad in lines and "valid" not in lines[bad], r.stdout
