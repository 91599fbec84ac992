"""A second, private Docker engine for tests that restart "the engine".

The shared engine is never restarted (other tests run on it). This starts a dockerd of our
own in its own network namespace, reachable from the host over a veth pair with addresses in
a private /24, with its own data root, exec root (and so its own managed containerd), socket
and pid file. Restarting it is a reboot in miniature: its containers stop, and come back by
their restart policies when it starts again.

    with PrivateEngine.started("lumape") as eng:                # stock_pools=True: dockerd's defaults
        eng.load_image("luma-e2e-busybox:abc")         # docker save | docker -H ... load
        eng.docker("ps")
        eng.restart()
        eng.ns_ip                                      # reach published ports here

Everything is torn down on exit, also on failure: dockerd stopped by its pid (and its
containerd with it), the namespace and veth deleted, the directories removed. Must run as
root; uses ``nsenter --net`` (not ``ip netns exec``, which remounts /sys and breaks dockerd).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import zlib
from pathlib import Path
from typing import Iterator


class EngineError(AssertionError):
    pass


def _run(cmd: list[str], check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise EngineError(f"command failed (exit {p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


class PrivateEngine:
    def __init__(self, name: str, stock_pools: bool = False):
        if len(name) > 11:
            raise ValueError("name must be at most 11 characters (interface names are at most 15)")
        self.name = name
        # a /24 in 10.252.0.0/16 derived from the name: two runs at once rarely collide, and
        # setup fails loudly (address in use) when they do
        octet = 16 + zlib.crc32(name.encode()) % 200
        self.host_ip = f"10.252.{octet}.1"
        self.ns_ip = f"10.252.{octet}.2"
        self.prefix = f"10.252.{octet}.0/24"
        self.netns = name
        self.veth_host = f"{name}h"
        self.veth_ns = f"{name}n"
        self.root = Path(f"/var/tmp/{name}")
        self.data_root = self.root / "data"
        self.exec_root = Path(f"/run/{name}x")  # short: unix socket paths live under it
        self.sock = Path(f"/run/{name}.sock")
        self.pidfile = Path(f"/run/{name}.pid")
        self.log = self.root / "dockerd.log"
        self.host = f"unix://{self.sock}"
        self.proc: subprocess.Popen | None = None
        #: True: dockerd's own defaults for docker0 and the address pools (172.17.0.0/16 for docker0,
        #: then 172.18-31.0.0/16 and 192.168.0.0/16 in /20s: 30 networks), as on a fresh install
        self.stock_pools = stock_pools
        #: the text of a daemon.json for the next start (``--config-file``), e.g. to apply a fix and restart
        self.daemon_json: str | None = None

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    @contextlib.contextmanager
    def started(cls, name: str, stock_pools: bool = False) -> Iterator["PrivateEngine"]:
        eng = cls(name, stock_pools)
        try:
            eng.setup_network()
            eng.start()
            yield eng
        finally:
            eng.teardown()

    def setup_network(self) -> None:
        if Path(f"/var/run/netns/{self.netns}").exists():
            raise EngineError(f"network namespace {self.netns} exists already (a leftover? remove it by hand)")
        _run(["ip", "netns", "add", self.netns])
        _run(["ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_ns])
        _run(["ip", "link", "set", self.veth_ns, "netns", self.netns])
        _run(["ip", "addr", "add", f"{self.host_ip}/24", "dev", self.veth_host])
        _run(["ip", "link", "set", self.veth_host, "up"])
        ns = ["nsenter", f"--net=/var/run/netns/{self.netns}"]
        _run([*ns, "ip", "addr", "add", f"{self.ns_ip}/24", "dev", self.veth_ns])
        _run([*ns, "ip", "link", "set", self.veth_ns, "up"])
        _run([*ns, "ip", "link", "set", "lo", "up"])
        # No default route: nothing in the namespace reaches beyond the host's end of the veth
        # (Docker's DNS then fails fast for names it does not know, instead of forwarding).

    def start(self, timeout: float = 60) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.exec_root.mkdir(parents=True, exist_ok=True)
        log = open(self.log, "ab")
        # its own bridge range: never confusable with the shared engine's in a log
        pools = [] if self.stock_pools else ["--bip", "10.253.0.1/24",
                                             "--default-address-pool", "base=10.254.0.0/16,size=24"]
        if self.stock_pools or self.daemon_json is not None:  # never the host's /etc/docker/daemon.json
            (self.root / "daemon.json").write_text(self.daemon_json or "{}")
            pools.append(f"--config-file={self.root / 'daemon.json'}")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/var/run/netns/{self.netns}", "setsid", "dockerd",
             "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
             "-H", self.host, "--pidfile", str(self.pidfile), *pools, "--log-level", "warn"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineError(f"private dockerd exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            if self.sock.exists() and self._answers():
                return
            time.sleep(0.2)
        raise EngineError(f"private dockerd did not answer within {timeout}s:\n{self.log.read_text()[-3000:]}")

    def _answers(self) -> bool:
        """dockerd answers an API call (a slow answer while it restores its state is "not yet")."""
        try:
            return _run(["docker", "-H", self.host, "version", "--format", "{{.Server.Version}}"],
                        check=False, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def stop(self, timeout: float = 60) -> None:
        """Stop dockerd by its pid (SIGTERM; it stops its containers and its containerd)."""
        pids = []
        if self.proc is not None:
            pids.append(self.proc.pid)
        if self.pidfile.exists():
            with contextlib.suppress(ValueError, OSError):
                pids.append(int(self.pidfile.read_text().strip()))
        for pid in dict.fromkeys(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid in dict.fromkeys(pids):
            while _alive(pid) and time.monotonic() < deadline:
                if self.proc is not None and pid == self.proc.pid:
                    self.proc.poll()
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        """The engine restart: stop dockerd (containers stop with it), start it again."""
        self.stop()
        self.start()

    def teardown(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        # processes left in the namespace (a containerd-shim of ours, never anything else)
        with contextlib.suppress(Exception):
            out = _run(["ip", "netns", "pids", self.netns], check=False).stdout.split()
            for pid in out:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        # mounts under our directories (overlay layers, shm, netns files)
        for base in (self.data_root, self.exec_root):
            with contextlib.suppress(Exception):
                mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                          if line.split()[1].startswith(str(base) + "/")]
                for m in sorted(mounts, key=len, reverse=True):
                    _run(["umount", "-l", m], check=False)
        _run(["ip", "link", "del", self.veth_host], check=False)
        _run(["ip", "netns", "del", self.netns], check=False)
        for p in (self.sock, self.pidfile):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        shutil.rmtree(self.exec_root, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ use

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host}

    def docker(self, *args: str, check: bool = True, timeout: float = 180, input: str | None = None) -> str:
        return _run(["docker", "-H", self.host, *args], check=check, timeout=timeout, input=input).stdout

    def load_image(self, tag: str) -> None:
        """Copy an image of the shared engine into this one (docker save | docker load)."""
        save = subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "-H", self.host, "load"], stdin=save.stdout, capture_output=True,
                              text=True, timeout=300)
        save.stdout.close()  # type: ignore[union-attr]
        save.wait(60)
        if save.returncode != 0 or load.returncode != 0:
            raise EngineError(f"could not copy {tag} into {self.name}: {load.stderr}")
