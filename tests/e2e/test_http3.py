"""Issue 12.4: HTTP/3 as advertised. With TLS on, the proxy publishes its HTTPS address over UDP too
and advertises the port clients actually use (``Alt-Svc: h3=":PORT"``); a real HTTP/3 client
(aioquic, a test extra) fetches a routed page through it, verified with the proxy's CA root.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
import time
from pathlib import Path

import pytest

import dockerkit as dk
from test_proxy import compose_text, proxy_container

# aioquic is a test extra (pip install -e '.[test]'); missing, this module fails to import: never skipped.
from aioquic.asyncio.client import connect  # noqa: E402
from aioquic.asyncio.protocol import QuicConnectionProtocol  # noqa: E402
from aioquic.h3.connection import H3_ALPN, H3Connection  # noqa: E402
from aioquic.h3.events import DataReceived, HeadersReceived  # noqa: E402
from aioquic.quic.configuration import QuicConfiguration  # noqa: E402


class H3Client(QuicConnectionProtocol):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.h3 = H3Connection(self._quic)
        self.events: dict[int, list] = {}
        self.waiters: dict[int, asyncio.Future] = {}

    def quic_event_received(self, event) -> None:
        for ev in self.h3.handle_event(event):
            if isinstance(ev, (HeadersReceived, DataReceived)):
                self.events.setdefault(ev.stream_id, []).append(ev)
                if ev.stream_ended and ev.stream_id in self.waiters:
                    self.waiters.pop(ev.stream_id).set_result(self.events.pop(ev.stream_id))

    async def get(self, authority: str, path: str) -> list:
        sid = self._quic.get_next_available_stream_id()
        self.h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                   (b":authority", authority.encode()), (b":path", path.encode())], end_stream=True)
        fut = asyncio.get_running_loop().create_future()
        self.waiters[sid] = fut
        self.transmit()
        return await asyncio.wait_for(fut, 10)


def h3_get(port: int, host: str, cafile: Path) -> tuple[int, str]:
    async def go() -> tuple[int, str]:
        cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=host)
        cfg.load_verify_locations(str(cafile))
        async with connect("127.0.0.1", port, configuration=cfg, create_protocol=H3Client,
                           wait_connected=True) as client:
            evs = await client.get(host, "/")
        headers = dict(next(e for e in evs if isinstance(e, HeadersReceived)).headers)
        body = b"".join(e.data for e in evs if isinstance(e, DataReceived)).decode().strip()
        return int(headers[b":status"]), body

    return asyncio.run(asyncio.wait_for(go(), 20))


def free_tcp_udp_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP."""
    for _ in range(50):
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise AssertionError("no free port")


def tls_get(port: int, host: str) -> tuple[int, dict[str, str]]:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the header is what this looks at
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    resp = http.client.HTTPResponse(_Sock(data))  # type: ignore[arg-type]
    resp.begin()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}


class _Sock:
    def __init__(self, data: bytes):
        import io

        self.f = io.BytesIO(data)

    def makefile(self, *a, **k):
        return self.f


@pytest.mark.parametrize("fixed", [True, False], ids=["fixed-port", "ephemeral-port"])
def test_http3_is_published_advertised_at_the_real_port_and_serves(caddy_image, busybox_image, tmp_path, compose,
                                                                   fixed):
    port = free_tcp_udp_port() if fixed else 0
    with proxy_container(caddy_image, "--tls", "internal", "--https-port", f"127.0.0.1:{port}") as px:
        project = dk.unique("hthree")
        host = f"{project}.example.test"
        compose(project, [Path("-")], directory=tmp_path,
                stdin=compose_text(project, busybox_image, {"web": {"hosts": [host]}}))
        px.sync()
        ports = dk.inspect(px.name)["NetworkSettings"]["Ports"]
        tcp, udp = int(ports["443/tcp"][0]["HostPort"]), int(ports["443/udp"][0]["HostPort"])
        assert ports["443/udp"][0]["HostIp"] == "127.0.0.1"
        if fixed:
            assert tcp == udp == port
        deadline = time.monotonic() + 30
        while True:
            try:
                status, headers = tls_get(tcp, host)
                if status == 200:
                    break
            except (OSError, ssl.SSLError):
                pass
            assert time.monotonic() < deadline, "HTTPS through the proxy never answered 200"
            time.sleep(0.3)
        assert headers["alt-svc"].startswith(f'h3=":{udp}"'), headers
        root = tmp_path / "caddy-root.crt"
        root.write_text(dk.docker("exec", px.name, "cat", "/data/caddy/pki/authorities/local/root.crt"))
        status, body = h3_get(udp, host, root)
        assert status == 200 and body.startswith(f"{project}/web/")


def test_tls_off_publishes_no_udp_and_advertises_nothing(caddy_image, busybox_image, tmp_path, compose):
    with proxy_container(caddy_image, "--tls", "off") as px:
        project = dk.unique("hthreeoff")
        host = f"{project}.example.test"
        compose(project, [Path("-")], directory=tmp_path,
                stdin=compose_text(project, busybox_image, {"web": {"hosts": [host]}}))
        px.sync()
        ports = dk.inspect(px.name)["NetworkSettings"]["Ports"]
        assert not any(k.endswith("/udp") and v for k, v in ports.items())
        conn = http.client.HTTPConnection("127.0.0.1", px.port, timeout=10)
        conn.request("GET", "/", headers={"Host": host})
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("alt-svc") is None
