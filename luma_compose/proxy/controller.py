"""The proxy controller: the edge where Docker lives.

It keeps one Caddy container's config equal to what the labels of the running
containers say. The labels are the state; nothing else is stored:

* ``up``: create/reconcile the proxy container, then ``sync``.
* ``sync``: one pass: labels -> route table -> attach the proxy to the ingress
  networks it needs -> load the Caddy config (only when it changed) -> detach
  from ingress networks nothing routes through any more, and remove such a
  network once its compose project has no containers at all.
* ``run``: ``sync`` on every relevant Docker event (debounced), reconnecting
  with backoff when the daemon goes away.
* ``down``: remove the proxy container (its certificate volume stays).

Caddy's admin API listens on loopback inside the proxy container. It is driven
through the Docker API (``put_archive`` + ``exec``), so no project container
(which can only reach the proxy over the ingress networks) can reach it, and
the proxy does not mount the Docker socket.

The docker SDK is imported lazily: render/check never import this module.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import contract
from ..contract import (  # the proxy container's own labels live with the others
    PROXY_EMAIL_LABEL,
    PROXY_HTTP_LABEL,
    PROXY_HTTPS_LABEL,
    PROXY_LABEL,
    PROXY_SELECT_LABEL,
    PROXY_TLS_LABEL,
)
from ..errors import LumaError, UnavailableError, UsageError
from . import caddy_config
from ..records import COMPOSE_PROJECT_LABEL, ContainerRecord, NetworkAttachment
from .route_table import RouteTable, build_table

if TYPE_CHECKING:  # pragma: no cover
    import docker
    from docker.models.containers import Container

DEFAULT_NAME = "luma-proxy"
DEFAULT_IMAGE = "caddy:2"
ENV_NAME = "LUMA_PROXY_NAME"
ENV_IMAGE = "LUMA_PROXY_IMAGE"
ENV_VOLUME = "LUMA_PROXY_VOLUME"

CONF_DIR = "/etc/luma"
BOOTSTRAP_PATH = f"{CONF_DIR}/bootstrap.json"
LIVE_PATH = f"{CONF_DIR}/live.json"
ADMIN_URL = f"http://{caddy_config.ADMIN_LISTEN}"
INTERNAL_HTTP_PORT = 80
INTERNAL_HTTPS_PORT = 443

#: Container events that can change the route table.
RELEVANT_ACTIONS = ("start", "die", "destroy", "pause", "unpause", "rename", "health_status")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- settings


def proxy_name(name: str | None = None) -> str:
    return name or os.environ.get(ENV_NAME) or DEFAULT_NAME


def parse_publish(value: str, what: str) -> tuple[str, int]:
    """``[IP:]PORT`` -> (ip, port); ip "" means all interfaces, port 0 means any free port."""
    m = re.fullmatch(r"(?:(\[[0-9a-fA-F:]+\]|[0-9.]+|localhost):)?(\d{1,5})", value.strip())
    if not m or int(m.group(2)) > 65535:
        raise UsageError(f"{what} {value!r} is not [IP:]PORT", "e.g. 80, 8080 or 127.0.0.1:8080 (0 picks a free port)")
    ip = (m.group(1) or "").strip("[]")
    if ip == "localhost":
        ip = "127.0.0.1"
    return ip, int(m.group(2))


def _publish_binding(value: str, what: str) -> tuple[str, int | None] | int | None:
    ip, port = parse_publish(value, what)
    if ip:
        return (ip, port or None)
    return port or None


# ----------------------------------------------------------------------------- docker access


def client() -> "docker.DockerClient":
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as e:  # pragma: no cover - it is a dependency
        raise UnavailableError("the docker Python SDK is not installed", "pip install luma-compose") from e
    try:
        c = docker.from_env(timeout=60)
        c.ping()
        return c
    except DockerException as e:
        raise UnavailableError(f"cannot reach the Docker engine: {_short(e)}",
                               "is dockerd running, and may this user use /var/run/docker.sock (or DOCKER_HOST)?") from e


def _next_event(events: "queue.Queue[str]", stop: threading.Event, timeout: float) -> str | None:
    """The next event, or None after ``timeout``; returns early when ``stop`` is set (SIGTERM)."""
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        try:
            return events.get(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            if time.monotonic() >= deadline:
                return None
    return None


def _short(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__


def _errors():
    from docker import errors

    return errors


def record(attrs: dict[str, Any]) -> ContainerRecord:
    """Plain record from a ``docker inspect`` of a container."""
    state = attrs.get("State") or {}
    nets = ((attrs.get("NetworkSettings") or {}).get("Networks")) or {}
    networks = {}
    for name, n in nets.items():
        n = n or {}
        aliases = tuple(n.get("Aliases") or ()) + tuple(n.get("DNSNames") or ())
        networks[name] = NetworkAttachment(n.get("IPAddress") or "", aliases)
    return ContainerRecord(
        id=attrs.get("Id", ""),
        name=(attrs.get("Name") or "").lstrip("/"),
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
        created=attrs.get("Created") or "",
        state=state.get("Status") or "",
        health=(state.get("Health") or {}).get("Status"),
        networks=networks,
        image=attrs.get("Image") or "",
    )


def managed_records(dc: "docker.DockerClient", select: str = "") -> list[ContainerRecord]:
    labels = [f"{contract.LABEL_MANAGED}=true"] + ([select] if select else [])
    cs = dc.containers.list(filters={"label": labels, "status": "running"}, ignore_removed=True)
    return [record(c.attrs) for c in cs]


# ----------------------------------------------------------------------------- the proxy container


class Proxy:
    """One proxy container, reached through the Docker API."""

    def __init__(self, dc: "docker.DockerClient", name: str):
        self.dc = dc
        self.name = name

    def container(self) -> "Container | None":
        try:
            return self.dc.containers.get(self.name)
        except _errors().NotFound:
            return None

    def running(self) -> "Container":
        c = self.container()
        if c is None:
            raise UnavailableError(f"the proxy container {self.name} does not exist",
                                   "start it with: luma-compose proxy up")
        if c.status != "running":
            raise UnavailableError(f"the proxy container {self.name} is {c.status}, not running",
                                   "start it with: luma-compose proxy up")
        return c

    def exec(self, c: "Container", cmd: list[str]) -> tuple[int, str, str]:
        r = c.exec_run(cmd, demux=True)
        out, err = r.output if isinstance(r.output, tuple) else (r.output, b"")
        return r.exit_code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")

    def put_file(self, c: "Container", path: str, data: bytes) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = tarfile.TarInfo("/".join(parts[:i]))
                d.type, d.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(d)
            info = tarfile.TarInfo(path.strip("/"))
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        if not c.put_archive("/", buf.getvalue()):
            raise UnavailableError(f"could not write {path} into {self.name}")

    def get_config(self, c: "Container") -> dict[str, Any] | None:
        code, out, err = self.exec(c, ["wget", "-q", "-O", "-", f"{ADMIN_URL}/config/"])
        if code != 0:
            raise UnavailableError(f"Caddy's admin API in {self.name} does not answer: {(err or out).strip()}",
                                   "see: docker logs " + self.name)
        try:
            cfg = json.loads(out or "null")
        except json.JSONDecodeError as e:
            raise UnavailableError(f"Caddy's admin API in {self.name} returned no JSON: {e}") from e
        return cfg if isinstance(cfg, dict) else None

    def load(self, c: "Container", config: dict[str, Any]) -> None:
        """Atomic ``POST /load`` of a whole config, through ``caddy reload`` in the container."""
        self.put_file(c, LIVE_PATH, caddy_config.dumps(config).encode())
        code, out, err = self.exec(c, ["caddy", "reload", "--config", LIVE_PATH, "--address", caddy_config.ADMIN_LISTEN])
        if code != 0:
            msg = (err or out).strip().splitlines()
            raise LumaError(f"Caddy in {self.name} rejected the config: {msg[-1] if msg else f'exit {code}'}",
                            "this is a bug in luma-compose; the previous config stays active")

    def wait_admin(self, c: "Container", timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            c.reload()
            if c.status != "running":
                logs = c.logs(tail=20).decode(errors="replace")
                raise UnavailableError(f"the proxy container {self.name} stopped ({c.status}):\n{logs}")
            code, out, err = self.exec(c, ["wget", "-q", "-O", "/dev/null", f"{ADMIN_URL}/config/"])
            if code == 0:
                return
            last = (err or out).strip()
            time.sleep(0.1)
        raise UnavailableError(f"Caddy's admin API in {self.name} did not come up within {timeout:.0f}s: {last}",
                               "see: docker logs " + self.name)


def _settings_of(c: "Container") -> dict[str, str]:
    lb = c.labels or {}
    return {"tls": lb.get(PROXY_TLS_LABEL, "acme"), "email": lb.get(PROXY_EMAIL_LABEL, ""),
            "http": lb.get(PROXY_HTTP_LABEL, "80"), "https": lb.get(PROXY_HTTPS_LABEL, "443"),
            "select": lb.get(PROXY_SELECT_LABEL, "")}


@dataclass(frozen=True)
class ProxyStatus:
    name: str
    image: str
    state: str  # the container's status: running, restarting, ...
    tls: str
    ports: dict[str, str]  # container port -> published address
    in_sync: bool
    table: RouteTable

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "proxy": {"name": self.name, "image": self.image, "status": self.state,
                                        "tls": self.tls, "ports": self.ports, "in_sync": self.in_sync},
                **self.table.to_json()}


def bootstrap_config(tls: str) -> dict[str, Any]:
    """What Caddy runs before the first sync: the admin API and 404 for everything."""
    return caddy_config.build_config(RouteTable(), tls=tls, http_port=INTERNAL_HTTP_PORT,
                                     https_port=INTERNAL_HTTPS_PORT)


# ----------------------------------------------------------------------------- sync


@dataclass
class SyncResult:
    table: RouteTable
    changed: bool
    connected: list[str] = field(default_factory=list)
    disconnected: list[str] = field(default_factory=list)
    removed_networks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Controller:
    def __init__(self, name: str | None = None, dc: "docker.DockerClient | None" = None):
        self.dc = dc or client()
        self.proxy = Proxy(self.dc, proxy_name(name))
        self._loaded: dict[str, Any] | None = None  # last config known to be in Caddy (for run)
        self._loaded_for: str = ""  # container id it was loaded into
        self._select: str = ""

    # -- up / down

    def up(self, image: str | None = None, http_port: str | None = None, https_port: str | None = None,
           tls: str | None = None, email: str | None = None, volume: str | None = None,
           select: str | None = None) -> tuple["Container", bool]:
        """Create or reconcile the proxy container. Unset options keep the existing container's value."""
        c = self.proxy.container()
        cur = _settings_of(c) if c is not None else {}
        want = {
            "image": image or os.environ.get(ENV_IMAGE) or (c.attrs["Config"]["Image"] if c is not None else DEFAULT_IMAGE),
            "tls": tls or cur.get("tls") or "acme",
            "email": email if email is not None else cur.get("email", ""),
            "http": http_port or cur.get("http") or "80",
            "https": https_port or cur.get("https") or "443",
            "select": select if select is not None else cur.get("select", ""),
        }
        if want["select"] and not re.fullmatch(r"[^=\s]+=\S*", want["select"]):
            raise UsageError(f"--select {want['select']!r} is not LABEL=VALUE")
        if want["tls"] not in caddy_config.TLS_MODES:
            raise UsageError(f"--tls {want['tls']!r} is not one of {', '.join(caddy_config.TLS_MODES)}")
        http_b = _publish_binding(want["http"], "--http-port")
        https_b = _publish_binding(want["https"], "--https-port")
        vol = volume or os.environ.get(ENV_VOLUME) or f"{self.proxy.name}-data"
        recreated = False
        if c is not None:
            same = (c.attrs["Config"]["Image"] == want["image"] and cur == {k: want[k] for k in ("tls", "email", "http", "https", "select")}
                    and any(m.get("Name") == vol for m in c.attrs.get("Mounts") or []))
            if not same:
                log(f"proxy: settings changed, recreating {self.proxy.name} (volume {vol} kept)")
                c.remove(force=True)
                c = None
        if c is None:
            c = self._create(want, http_b, https_b, vol)
            recreated = True
        if c.status != "running":
            c.start()
        self.proxy.wait_admin(c)
        c.reload()
        return c, recreated

    def _create(self, want: dict[str, str], http_b: Any, https_b: Any, vol: str) -> "Container":
        errors = _errors()
        try:
            self.dc.volumes.get(vol)
        except errors.NotFound:
            self.dc.volumes.create(vol, labels={PROXY_LABEL: "true"})
        ports: dict[str, Any] = {f"{INTERNAL_HTTP_PORT}/tcp": http_b}
        if want["tls"] != "off":
            ports[f"{INTERNAL_HTTPS_PORT}/tcp"] = https_b
        kw = dict(
            name=self.proxy.name,
            command=["caddy", "run", "--config", BOOTSTRAP_PATH],
            labels={PROXY_LABEL: "true", PROXY_TLS_LABEL: want["tls"], PROXY_EMAIL_LABEL: want["email"],
                    PROXY_HTTP_LABEL: want["http"], PROXY_HTTPS_LABEL: want["https"],
                    PROXY_SELECT_LABEL: want["select"]},
            restart_policy={"Name": "unless-stopped"},
            volumes={vol: {"bind": "/data", "mode": "rw"}},
            ports=ports,
            environment={"XDG_DATA_HOME": "/data", "XDG_CONFIG_HOME": "/config"},
            detach=True,
        )
        try:
            c = self.dc.containers.create(want["image"], **kw)
        except errors.ImageNotFound:
            log(f"proxy: pulling {want['image']}")
            try:
                self.dc.images.pull(want["image"])
            except errors.APIError as e:
                raise UnavailableError(f"cannot pull the proxy image {want['image']}: {_short(e)}",
                                       "choose a local image with --image or LUMA_PROXY_IMAGE") from e
            c = self.dc.containers.create(want["image"], **kw)
        except errors.APIError as e:
            raise UnavailableError(f"cannot create the proxy container {self.proxy.name}: {_short(e)}") from e
        try:
            self.proxy.put_file(c, BOOTSTRAP_PATH, caddy_config.dumps(bootstrap_config(want["tls"])).encode())
            c.start()
        except errors.APIError as e:
            c.remove(force=True)
            raise UnavailableError(f"cannot start the proxy container {self.proxy.name}: {_short(e)}",
                                   "is the host port already in use? choose another with --http-port/--https-port") from e
        c.reload()
        return c

    def down(self) -> bool:
        c = self.proxy.container()
        if c is None:
            return False
        c.remove(force=True)
        self._loaded = None
        return True

    # -- sync

    def table(self, c: "Container | None" = None,
              exclude_projects: frozenset[str] = frozenset()) -> tuple[RouteTable, dict[str, Any] | None]:
        """The route table from the labels, with the proxy's loaded routes as incumbents.

        ``exclude_projects``: leave these projects' containers out (``down`` unroutes a project
        before stopping it)."""
        current = None
        select = ""
        if c is not None:
            select = self._select = _settings_of(c)["select"]
            if c.status == "running":
                current = self._current(c)
        records = [r for r in managed_records(self.dc, select)
                   if r.labels.get(contract.LABEL_PROJECT) not in exclude_projects]
        return build_table(records, caddy_config.served_hosts(current)), current

    def status(self) -> "ProxyStatus":
        """The running proxy, its route table, and whether Caddy's loaded config matches the labels."""
        c = self.proxy.running()
        table, current = self.table(c)
        s = _settings_of(c)
        desired = caddy_config.build_config(table, tls=s["tls"], email=s["email"] or None)
        in_sync = current is not None and caddy_config.dumps(current) == caddy_config.dumps(desired)
        ports = {k: f"{v[0]['HostIp'] or '*'}:{v[0]['HostPort']}"
                 for k, v in (c.attrs["NetworkSettings"]["Ports"] or {}).items() if v}
        return ProxyStatus(self.proxy.name, c.attrs["Config"]["Image"], c.status, s["tls"], ports, in_sync, table)

    def _current(self, c: "Container") -> dict[str, Any] | None:
        if self._loaded is not None and self._loaded_for == c.id:
            return self._loaded
        cfg = self.proxy.get_config(c)
        self._loaded, self._loaded_for = cfg, c.id
        return cfg

    def forget(self) -> None:
        self._loaded = None

    def sync(self, exclude_projects: frozenset[str] = frozenset()) -> SyncResult:
        c = self.proxy.running()
        s = _settings_of(c)
        table, current = self.table(c, exclude_projects)
        desired = caddy_config.build_config(table, tls=s["tls"], email=s["email"] or None,
                                            http_port=INTERNAL_HTTP_PORT, https_port=INTERNAL_HTTPS_PORT)
        res = SyncResult(table, changed=False)
        attached = set((c.attrs.get("NetworkSettings") or {}).get("Networks") or {})
        errors = _errors()
        for net in sorted(table.networks() - attached):
            try:
                self.dc.networks.get(net).connect(c)
                res.connected.append(net)
            except errors.APIError as e:
                if "already exists" in str(e):
                    continue
                res.warnings.append(f"cannot attach {self.proxy.name} to {net}: {_short(e)}")
        if current is None or caddy_config.dumps(current) != caddy_config.dumps(desired):
            self.proxy.load(c, desired)
            self._loaded, self._loaded_for = json.loads(caddy_config.dumps(desired)), c.id
            res.changed = True
        self._prune(c, table, attached, res)
        return res

    def _prune(self, c: "Container", table: RouteTable, attached: set[str], res: SyncResult) -> None:
        errors = _errors()
        needed = table.networks()
        for net in sorted(attached - needed):
            try:
                n = self.dc.networks.get(net)
            except errors.NotFound:
                continue
            labels = n.attrs.get("Labels") or {}
            if labels.get(contract.NETWORK_OWNER_LABEL) != "true" and not net.endswith("_" + contract.NETWORK_KEY):
                continue  # not an ingress network: someone attached it on purpose
            try:
                n.disconnect(c)
                res.disconnected.append(net)
            except errors.APIError as e:
                res.warnings.append(f"cannot detach {self.proxy.name} from {net}: {_short(e)}")
                continue
            project = labels.get(COMPOSE_PROJECT_LABEL)
            if labels.get(contract.NETWORK_OWNER_LABEL) != "true" or not project:
                continue
            if self.dc.containers.list(all=True, filters={"label": f"{COMPOSE_PROJECT_LABEL}={project}"}):
                continue  # the project still exists (stopped or starting): leave its network to compose
            try:
                n.reload()
                if n.attrs.get("Containers"):
                    continue
                n.remove()
                res.removed_networks.append(net)
            except errors.NotFound:
                pass
            except errors.APIError as e:
                res.warnings.append(f"cannot remove network {net}: {_short(e)}")

    # -- run

    def run(self, stop: threading.Event | None = None, debounce: float = 0.05, max_delay: float = 0.25,
            resync_every: float = 30.0, on_sync: Callable[[SyncResult], None] | None = None) -> None:
        """Sync now, then on every relevant event, until ``stop`` is set."""
        stop = stop or threading.Event()
        events: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=self._read_events, args=(events, stop), daemon=True)
        reader.start()
        backoff = 0.25
        pending = True
        while not stop.is_set():
            if pending:
                try:
                    res = self.sync()
                    backoff = 0.25
                    if on_sync:
                        on_sync(res)
                except LumaError as e:
                    log(f"proxy run: {e.message} (retrying in {backoff:.2f}s)")
                    self.forget()
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                except Exception as e:  # the daemon went away mid-sync, etc.
                    log(f"proxy run: sync failed: {_short(e)} (retrying in {backoff:.2f}s)")
                    self.forget()
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                pending = False
            ev = _next_event(events, stop, resync_every)
            if ev is None:  # quiet for resync_every (or stopping): a full sync
                pending = True
                continue
            # Debounce: wait for a short quiet period, never longer than max_delay.
            first = time.monotonic()
            kinds = {ev}
            while time.monotonic() - first < max_delay:
                try:
                    kinds.add(events.get(timeout=debounce))
                except queue.Empty:
                    break
            if "proxy" in kinds or "reconnected" in kinds:
                self.forget()
            pending = True

    def _selected(self, attrs: dict[str, str]) -> bool:
        sel = self._select  # as of the last sync (the reader thread makes no API calls of its own)
        if not sel:
            return True
        k, _, v = sel.partition("=")
        return attrs.get(k) == v

    def _read_events(self, out: "queue.Queue[str]", stop: threading.Event) -> None:
        """Push "managed", "proxy" or "reconnected" for each relevant event; reconnect forever."""
        backoff = 0.25
        while not stop.is_set():
            try:
                import docker

                dc = docker.from_env(timeout=None)
                # Replay the last second too: nothing between a sync and the subscription is lost.
                stream = dc.events(decode=True, filters={"type": "container"}, since=int(time.time()) - 1)
                backoff = 0.25
                for ev in stream:
                    if stop.is_set():
                        return
                    action = (ev.get("Action") or ev.get("status") or "").split(":")[0]
                    if action not in RELEVANT_ACTIONS:
                        continue
                    attrs = (ev.get("Actor") or {}).get("Attributes") or {}
                    if attrs.get("name") == self.proxy.name:
                        out.put("proxy")
                    elif attrs.get(contract.LABEL_MANAGED) == "true" and self._selected(attrs):
                        out.put("managed")
                log("proxy run: the Docker event stream ended; reconnecting")
            except Exception as e:  # daemon restarting, socket closed, ...
                if stop.is_set():
                    return
                log(f"proxy run: lost the Docker event stream ({_short(e)}); reconnecting in {backoff:.2f}s")
            stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
            # Whatever happened while we were away is picked up by a full sync.
            out.put("reconnected")
