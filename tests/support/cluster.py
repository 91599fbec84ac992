"""A private Docker Swarm for tests: N dockerds, each in its own network namespace.

Nothing here touches the machine's own Docker engine (it is shared with other test runs, and
``docker swarm init`` would change it under them). Topology, all private to one test run::

    netns <id>hub:   bridge br0 (no address)
      |-- veth -- netns <id>n1:     10.253.X.1   dockerd (manager), unix:///run/lsw-<id>-n1.sock
      |-- veth -- netns <id>n2:     10.253.X.2   dockerd (worker)
      `-- veth -- netns <id>client: 10.253.X.100 the "internet": load generators run here

No namespace has a default route, so a node can reach only the other nodes and the client: never
any other address. The engines' sockets are plain files, so the host's docker CLI and the SDK
drive them with ``DOCKER_HOST=unix:///run/lsw-<id>-nK.sock`` (engine.client honours it).

Images come from the local engine with ``docker save | docker -H NODE load`` (there is no
registry), and stacks are deployed with ``--resolve-image never``.

Membership changes for tests: ``add_node(images)`` starts one more dockerd (``.N``, its own namespace
on the same bridge), loads the images and joins it as a worker; ``remove_node(node)`` runs ``docker
swarm leave`` on it and ``docker node rm`` on the manager; ``restart_engine(node)`` stops a dockerd by
its pid and starts it again with the same flags and state. Teardown covers every node ever added.

Usable as a context manager (``with cluster(2, images=[...]) as c:``) or from the shell for
poking around by hand: ``python tests/support/cluster.py up`` / ``down ID``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

NETNS_DIR = Path("/var/run/netns")
STATE_ROOT = Path("/var/lib/luma-swarm-test")
#: Overlay subnets of the test swarm: far from the underlay and from Docker's local pools.
ADDR_POOL = "10.210.0.0/16"


class ClusterError(AssertionError):
    pass


def _run(cmd: Sequence[str], *, check: bool = True, input: bytes | str | None = None, timeout: float = 120,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    text = not isinstance(input, bytes)
    try:
        p = subprocess.run(list(cmd), capture_output=True, text=text, input=input, timeout=timeout,
                           env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as e:
        raise ClusterError(f"timed out after {timeout}s: {' '.join(cmd)}") from e
    if check and p.returncode != 0:
        err = p.stderr if text else p.stderr.decode(errors="replace")
        raise ClusterError(f"command failed (exit {p.returncode}): {' '.join(cmd)}\n{err.strip()}")
    return p


@dataclass
class Node:
    name: str        # netns name, also the swarm node's hostname is the machine's; see node_id
    index: int
    ip: str
    sock: str        # unix socket path
    data_root: Path
    exec_root: Path
    pidfile: Path
    log: Path
    pid: int | None = None
    node_id: str = ""

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host}

    def docker(self, *args: str, check: bool = True, input: bytes | str | None = None,
               timeout: float = 180) -> str:
        p = _run(["docker", "-H", self.host, *args], check=check, input=input, timeout=timeout)
        return p.stdout if isinstance(p.stdout, str) else p.stdout.decode()

    def netns_cmd(self) -> list[str]:
        return ["nsenter", f"--net={NETNS_DIR / self.name}"]


@dataclass
class Cluster:
    id: str
    subnet: str               # "10.253.X"
    hub: str
    client_ns: str
    client_ip: str
    nodes: list[Node] = field(default_factory=list)
    #: Nodes that left the swarm (remove_node): their engines are stopped, torn down with the rest.
    retired: list[Node] = field(default_factory=list)

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def docker(self, *args: str, **kw) -> str:
        """The docker CLI against the manager."""
        return self.manager.docker(*args, **kw)

    def in_client(self, cmd: Sequence[str], *, check: bool = False, timeout: float = 120,
                  input: str | None = None) -> subprocess.CompletedProcess:
        """Run a host binary (curl, hey, ...) inside the client namespace: the outside world."""
        return _run(["nsenter", f"--net={NETNS_DIR / self.client_ns}", *cmd], check=check, timeout=timeout,
                    input=input)

    def client_popen(self, cmd: Sequence[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(["nsenter", f"--net={NETNS_DIR / self.client_ns}", *cmd], **kw)

    def node_by_id(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(node_id)

    def load_image(self, tag: str, nodes: Sequence[Node] | None = None) -> None:
        """Copy an image of the local engine into every node, or into ``nodes`` (no registry)."""
        p = subprocess.run(["docker", "save", tag], capture_output=True, timeout=300)
        if p.returncode != 0:
            raise ClusterError(f"docker save {tag}: {p.stderr.decode(errors='replace').strip()}")
        data = p.stdout
        for n in self.nodes if nodes is None else nodes:
            _run(["docker", "-H", n.host, "load"], input=data, timeout=300)

    def add_node(self, images: Sequence[str] = ()) -> Node:
        """A new private dockerd in its own namespace on the same bridge, joined as a worker, Ready,
        with ``images`` loaded. Torn down with the cluster."""
        index = max(n.index for n in [*self.nodes, *self.retired]) + 1
        node = _node(self, index)
        _run(["ip", "netns", "add", node.name])
        self.nodes.append(node)  # from here on, teardown owns it
        _link(self, node.name, node.ip, f"n{index}")
        node.log.parent.mkdir(parents=True, exist_ok=True)
        start_engine(node)
        for tag in images:  # before joining: nothing can be scheduled on it without its images
            self.load_image(tag, [node])
        token = self.docker("swarm", "join-token", "-q", "worker").strip()
        node.docker("swarm", "join", "--token", token, "--advertise-addr", node.ip, "--listen-addr",
                    f"{node.ip}:2377", f"{self.manager.ip}:2377")
        node.node_id = node.docker("info", "--format", "{{.Swarm.NodeID}}").strip()
        _wait_ready(self, [node])
        return node

    def remove_node(self, node: Node, timeout: float = 60) -> None:
        """``docker swarm leave`` on the node, wait for the manager to see it Down, ``docker node rm``,
        stop its engine. Its namespace stays until teardown."""
        node.docker("swarm", "leave", timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.docker("node", "inspect", node.node_id, "--format", "{{.Status.State}}", check=False).strip()
            if st == "down":
                break
            time.sleep(0.5)
        else:
            raise ClusterError(f"node {node.name} not down {timeout}s after leaving:\n" + self.docker("node", "ls"))
        self.docker("node", "rm", node.node_id)
        stop_engine(node)
        self.nodes.remove(node)
        self.retired.append(node)

    def restart_engine(self, node: Node) -> None:
        """Stop the node's dockerd by pid and start it again with the same flags and state."""
        stop_engine(node, timeout=60)
        start_engine(node)

    def service_tasks(self, service: str) -> list[dict]:
        """Running tasks of a service: [{"id", "node", "node_id", "container", "state"}]."""
        out = self.docker("service", "ps", service, "--no-trunc", "--filter", "desired-state=running",
                          "--format", "{{json .}}", check=False)
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return rows

    def close(self) -> None:
        _teardown(self)


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    _run(cmd)


def _wait_engine(node: Node, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterError(f"dockerd of {node.name} exited ({proc.returncode}):\n{_tail(node.log)}")
        if _run(["docker", "-H", node.host, "info", "--format", "{{.ID}}"], check=False, timeout=20).returncode == 0:
            return
        time.sleep(0.3)
    raise ClusterError(f"dockerd of {node.name} did not answer within {timeout}s:\n{_tail(node.log)}")


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def start_engine(node: Node) -> None:
    """Start (or restart) the node's dockerd inside its namespace."""
    for d in (node.data_root, node.exec_root):
        d.mkdir(parents=True, exist_ok=True)
    log = node.log.open("ab")
    # nsenter, not `ip netns exec`: that remounts /sys, and dockerd then finds no devices cgroup.
    proc = subprocess.Popen(
        [*node.netns_cmd(), "dockerd", "--data-root", str(node.data_root), "--exec-root", str(node.exec_root),
         "-H", node.host, "--pidfile", str(node.pidfile), "--bridge", "none", "--log-level", "warn"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    log.close()
    node.pid = proc.pid
    _wait_engine(node, proc)


def stop_engine(node: Node, timeout: float = 30) -> None:
    """Stop the node's dockerd by its pid (never by name), waiting for it to exit."""
    pid = node.pid
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid if not _alive(pid) else 0
        if done:
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    node.pid = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _node(c: Cluster, i: int) -> Node:
    base = STATE_ROOT / c.id
    return Node(
        name=f"lsw{c.id}n{i}", index=i, ip=f"{c.subnet}.{i}", sock=f"/run/lsw-{c.id}-n{i}.sock",
        data_root=base / f"n{i}" / "data", exec_root=Path(f"/run/lsw-{c.id}-n{i}"),
        pidfile=Path(f"/run/lsw-{c.id}-n{i}.pid"), log=base / f"n{i}" / "dockerd.log",
    )


def _new(n_nodes: int) -> Cluster:
    cid = secrets.token_hex(3)
    octet = 1 + int(cid, 16) % 250
    subnet = f"10.253.{octet}"
    c = Cluster(id=cid, subnet=subnet, hub=f"lsw{cid}hub", client_ns=f"lsw{cid}client", client_ip=f"{subnet}.100")
    for i in range(1, n_nodes + 1):
        c.nodes.append(_node(c, i))
    return c


def _link(c: Cluster, ns: str, ip: str, short: str) -> None:
    """veth pair: one end in the hub's bridge, the other in ``ns`` with ``ip``/24."""
    a, b = f"ls{c.id}{short}h", f"ls{c.id}{short}"
    _run(["ip", "link", "add", a, "type", "veth", "peer", "name", b])
    _run(["ip", "link", "set", a, "netns", c.hub])
    _run(["ip", "link", "set", b, "netns", ns])
    _ip("link", "set", a, "master", "br0", ns=c.hub)
    _ip("link", "set", a, "up", ns=c.hub)
    _ip("addr", "add", f"{ip}/24", "dev", b, ns=ns)
    _ip("link", "set", b, "up", ns=ns)
    _ip("link", "set", "lo", "up", ns=ns)


def _namespaces(c: Cluster) -> list[str]:
    return [c.hub, c.client_ns, *(n.name for n in [*c.nodes, *c.retired])]


def _setup_network(c: Cluster) -> None:
    for ns in _namespaces(c):
        _run(["ip", "netns", "add", ns])
    _ip("link", "add", "br0", "type", "bridge", ns=c.hub)
    _ip("link", "set", "br0", "up", ns=c.hub)
    for n in c.nodes:
        _link(c, n.name, n.ip, f"n{n.index}")
    _link(c, c.client_ns, c.client_ip, "c")


def _form_swarm(c: Cluster) -> None:
    m = c.manager
    m.docker("swarm", "init", "--advertise-addr", m.ip, "--listen-addr", f"{m.ip}:2377",
             "--default-addr-pool", ADDR_POOL)
    token = m.docker("swarm", "join-token", "-q", "worker").strip()
    for n in c.nodes[1:]:
        n.docker("swarm", "join", "--token", token, "--advertise-addr", n.ip, "--listen-addr", f"{n.ip}:2377",
                 f"{m.ip}:2377")
    for n in c.nodes:
        n.node_id = n.docker("info", "--format", "{{.Swarm.NodeID}}").strip()
    _wait_ready(c, c.nodes)


def _wait_ready(c: Cluster, nodes: Sequence[Node], timeout: float = 60) -> None:
    """Every node of ``nodes`` Ready, as the manager sees it, before anyone schedules on it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = c.docker("node", "ls", "--format", "{{.ID}} {{.Status}}")
        ready = {line.split()[0] for line in out.splitlines() if line.endswith("Ready")}
        if all(n.node_id in ready for n in nodes):
            return
        time.sleep(0.5)
    raise ClusterError(f"swarm nodes not Ready within {timeout}s:\n" + c.docker("node", "ls"))


def _teardown(c: Cluster) -> None:
    errors: list[str] = []
    every = [*c.nodes, *c.retired]
    for n in reversed(c.nodes):
        if n.pid:
            with contextlib.suppress(ClusterError):
                n.docker("swarm", "leave", "--force", check=False, timeout=60)
    for n in reversed(every):
        stop_engine(n)
    # Anything still running in our namespaces (shims, containers) was started by our engines.
    for ns in _namespaces(c):
        p = _run(["ip", "netns", "pids", ns], check=False)
        for pid in (int(x) for x in (p.stdout or "").split() if x.isdigit()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for n in every:
        for root in (n.exec_root, n.data_root):
            _unmount_under(root)
    for ns in _namespaces(c):
        if (NETNS_DIR / ns).exists():
            if _run(["ip", "netns", "del", ns], check=False).returncode != 0:
                errors.append(f"ip netns del {ns}")
    for n in every:
        shutil.rmtree(n.exec_root, ignore_errors=True)
        for f in (Path(n.sock), n.pidfile):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
    shutil.rmtree(STATE_ROOT / c.id, ignore_errors=True)
    with contextlib.suppress(OSError):
        STATE_ROOT.rmdir()
    if errors:
        raise ClusterError("cluster teardown left: " + ", ".join(errors))


def _unmount_under(root: Path) -> None:
    prefix = str(root)
    mounts = []
    with open("/proc/self/mounts") as f:
        for line in f:
            mp = line.split()[1].replace("\\040", " ")
            if mp == prefix or mp.startswith(prefix + "/"):
                mounts.append(mp)
    for mp in sorted(mounts, key=len, reverse=True):
        _run(["umount", "-l", mp], check=False)


def preflight() -> str | None:
    """Why a private cluster cannot be built here, or None."""
    if os.geteuid() != 0:
        return "building a private swarm needs root (network namespaces, dockerd)"
    for tool in ("ip", "nsenter", "dockerd", "docker"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    return None


@contextlib.contextmanager
def cluster(n_nodes: int = 2, images: Sequence[str] = ()) -> Iterator[Cluster]:
    """A private swarm of ``n_nodes`` engines (node 1 the manager), torn down at exit, pass or fail."""
    why = preflight()
    if why:
        raise ClusterError(why)
    c = _new(n_nodes)
    try:
        _setup_network(c)
        for n in c.nodes:
            n.log.parent.mkdir(parents=True, exist_ok=True)
            start_engine(n)
        _form_swarm(c)
        for tag in images:
            c.load_image(tag)
        yield c
    finally:
        _teardown(c)


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    if sys.argv[1:2] == ["up"]:
        cm = cluster(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
        c = cm.__enter__()
        print(json.dumps({"id": c.id, "nodes": [n.host for n in c.nodes], "client_ns": c.client_ns}))
        print("press Enter to tear down", file=sys.stderr)
        try:
            sys.stdin.readline()
        finally:
            cm.__exit__(None, None, None)
