"""Health checks deploy relies on: a new container's own check, and each host end to end.

Both run through the engine: a container's Docker health check is read from its record;
without one, ``GET luma.health.path`` is sent from inside the proxy container to the
container's own address on the ingress network (what the proxy dials). A host is checked
through the proxy itself: plain HTTP from inside the proxy, HTTPS from this machine to the
published port with the host as SNI.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..contract import RoutedService
from ..errors import LumaError
from ..proxy.container import INTERNAL_HTTP_PORT, ProxyContainer, published, settings_of
from .plan import DeployFailed, failure_report, live_urls, LOG_TAIL

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.protocols import Engine


class Checks:
    def __init__(self, engine: "Engine", proxy: ProxyContainer, network: str, timeout: float,
                 warn: Callable[[str], None], sleep: Callable[[float], None] = time.sleep):
        self.engine = engine
        self.proxy = proxy
        self.network = network
        self.timeout = timeout
        self.warn = warn
        self.sleep = sleep

    def wait_healthy(self, r: RoutedService, ids: Sequence[str], on_failure: Callable[[], None] | None) -> None:
        """Wait until each container in ``ids`` passes its check; else ``on_failure()`` and DeployFailed."""
        deadline = time.monotonic() + self.timeout
        pending = list(ids)
        last: dict[str, str] = {}
        while pending:
            for cid in list(pending):
                c = self.engine.container(cid)
                if c is None:
                    self._fail(r.service, cid, "the container was removed", "", on_failure)
                    continue
                if c.state in ("exited", "dead") or (c.state == "created" and c.error):
                    self._fail(r.service, cid, f"it {c.state} (exit code {c.exit_code})", c.error, on_failure)
                if c.health is not None:
                    last[cid] = c.health_log
                    if c.health == "healthy":
                        pending.remove(cid)
                    elif c.health == "unhealthy":
                        self._fail(r.service, cid, "its Docker health check reports unhealthy", last[cid], on_failure)
                    continue
                net = c.networks.get(self.network)
                if net is None or not net.ip:
                    last[cid] = f"no IP on {self.network} yet"
                    continue
                url = f"http://{net.ip}:{r.port}{r.health_path}"
                ok, detail = self.proxy.fetch(url)
                if ok:
                    pending.remove(cid)
                else:
                    last[cid] = f"GET {url} from the proxy: {detail}"
            if not pending:
                return
            if time.monotonic() > deadline:
                cid = pending[0]
                self._fail(r.service, cid, f"not healthy within --timeout {self.timeout:g}s", last.get(cid, ""),
                           on_failure)
            self.sleep(0.25)

    def _fail(self, service: str, cid: str, status: str, detail: str, on_failure: Callable[[], None] | None) -> None:
        c = self.engine.container(cid)
        name = c.name if c is not None else cid[:12]
        msg = failure_report(service, name, status, detail, self.engine.logs(cid, tail=LOG_TAIL))
        if on_failure is not None:
            on_failure()
            raise DeployFailed(msg, "the new container(s) were removed; the running version keeps serving")
        raise DeployFailed(msg, f"fix the service and deploy again; see: docker compose logs {service}")

    def check_host(self, host: str, path: str | None) -> None:
        """GET the health path of ``host`` through the proxy; 2xx/3xx or an error. ``path`` None: the
        proxy sends the health path elsewhere (``paths`` without ``strip_prefix``): said, not checked."""
        if path is None:
            self.warn(f"{host}: not checked through the proxy (the health path is under none of the service's "
                      "paths); its containers passed their own checks")
            return
        pc = self.proxy.running()
        tls = settings_of(pc).tls
        if tls == "off":
            last = ""
            for _ in range(20):
                ok, last = self.proxy.fetch(f"http://127.0.0.1:{INTERNAL_HTTP_PORT}{path}", host=host)
                if ok:
                    return
                self.sleep(0.25)
            raise LumaError(f"GET {path} for host {host} through the proxy failed: {last}",
                            f"see: luma-compose routes --name {self.proxy.name}")
        # HTTPS: from this machine to the published port, with the host as SNI. Only when the
        # engine is on this machine: deploying to a remote engine needs nothing to reach it but the
        # engine itself (the containers were checked from inside the proxy).
        if not getattr(getattr(self.engine, "endpoint", None), "is_local", True):
            self.warn(f"{host}: HTTPS not checked from here (the engine is remote); its containers "
                      "passed their checks from inside the proxy")
            return
        ip, _, https_port = published(pc)
        if https_port is None:
            self.warn(f"{host}: the proxy publishes no HTTPS port here; not checked end to end")
            return
        addr = "127.0.0.1" if ip in ("", "0.0.0.0", "::") else ip
        last = ""
        for _ in range(40):
            try:
                status, guard = https_status(addr, https_port, host, path)
                if 200 <= status < 400 or (guard and status in (401, 403)):
                    return  # a 401/403 of the route's own guard (docs/access.md): served, as to any client
                last = f"HTTP {status}"
                if tls == "acme" and status >= 500:
                    break
            except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                last = f"{type(e).__name__}: {e}"
                if tls == "acme":
                    break
            self.sleep(0.25)
        if tls == "acme":
            self.warn(f"{host}: not reachable over HTTPS yet ({last}); the ACME certificate may still "
                      "be on its way (DNS must point here)")
            return
        raise LumaError(f"GET {path} for host {host} through the proxy (HTTPS) failed: {last}",
                        f"see: luma-compose routes --name {self.proxy.name}")

    def urls(self, routed: Sequence[RoutedService]) -> list[str]:
        pc = self.proxy.running()
        _, http_port, https_port = published(pc)
        return live_urls([h for r in routed for h in r.hosts], settings_of(pc).tls, http_port, https_port)


def https_get(addr: str, port: int, host: str, path: str, timeout: float = 5) -> int:
    return https_status(addr, port, host, path, timeout)[0]


def https_status(addr: str, port: int, host: str, path: str, timeout: float = 5) -> tuple[int, str]:
    """(status, the proxy's ``Luma-Guard`` header or "") of ``GET path`` for ``host`` over HTTPS."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    head = b""
    with socket.create_connection((addr, port), timeout=timeout) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        while b"\r\n\r\n" not in head and len(head) < 16384:
            chunk = tls.recv(4096)
            if not chunk:
                break
            head += chunk
    lines = head.decode(errors="replace").split("\r\n\r\n", 1)[0].split("\r\n")
    parts = lines[0].split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise http.client.HTTPException(f"no HTTP status line: {lines[0][:64]!r}")
    guard = next((v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
                  if k.strip().lower() == "luma-guard"), "")
    return int(parts[1]), guard


def watch_running(engine: "Engine", ids: Sequence[str], seconds: float, sleep: Callable[[float], None]) -> str:
    """Watch containers for ``seconds`` (deploy's settle time): "" if all kept running and healthy, else
    the name of one that stopped, restarted (a non-zero last exit code) or turned unhealthy."""
    step = 0.5
    for i in range(int(seconds / step) + 2):
        for cid in ids:
            c = engine.container(cid)
            if c is None or not c.running or c.health == "unhealthy" or c.exit_code not in (None, 0):
                return c.name if c is not None else cid[:12]
        if i * step < seconds:
            sleep(min(step, seconds - i * step))
    return ""
