"""``ssh://`` engines for the docker SDK, the way the docker CLI reaches them.

The CLI runs ``ssh [-l user] [-p port] -- host docker system dial-stdio`` per connection and speaks
the Docker API over its stdin/stdout. This module does the same behind a private unix socket (a
0700 temp directory, one background thread): the SDK talks plain ``unix://`` to it, so every API
feature (exec with hijacked streams, events, archives) works as on a local socket, and the system
``ssh`` applies ``~/.ssh/config``, ``known_hosts`` and the agent exactly as for the CLI. SSH
connection sharing (ControlMaster, per process) makes each further API connection cheap.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from urllib.parse import urlsplit


def ssh_argv(url: str, control_path: str | None = None) -> list[str]:
    """``ssh`` options that reach the host of an ``ssh://`` URL, without the remote command."""
    u = urlsplit(url)
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30"]
    if control_path:
        argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control_path}", "-o", "ControlPersist=30"]
    if u.username:
        argv += ["-l", u.username]
    if u.port:
        argv += ["-p", str(u.port)]
    return [*argv, "--", u.hostname or ""]


class SshTunnel:
    """A unix socket whose every connection is ``docker system dial-stdio`` on the remote host."""

    def __init__(self, url: str):
        self.url = url
        self.dir = tempfile.mkdtemp(prefix="luma-ssh-")
        os.chmod(self.dir, 0o700)
        self.path = os.path.join(self.dir, "docker.sock")
        self.control = os.path.join(self.dir, "cm")
        self.procs: list[subprocess.Popen] = []
        self.lock = threading.Lock()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(64)
        threading.Thread(target=self._accept, daemon=True, name="luma-ssh-tunnel").start()
        atexit.register(self.close)

    @property
    def base_url(self) -> str:
        return "unix://" + self.path

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            try:
                p = subprocess.Popen([*ssh_argv(self.url, self.control), "docker", "system", "dial-stdio"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
            except OSError:
                conn.close()
                continue
            with self.lock:
                self.procs.append(p)
            threading.Thread(target=self._up, args=(conn, p), daemon=True).start()
            threading.Thread(target=self._down, args=(conn, p), daemon=True).start()

    @staticmethod
    def _up(conn: socket.socket, p: subprocess.Popen) -> None:
        try:
            while data := conn.recv(65536):
                p.stdin.write(data)  # type: ignore[union-attr]
                p.stdin.flush()  # type: ignore[union-attr]
        except OSError:
            pass
        with contextlib.suppress(OSError):
            p.stdin.close()  # type: ignore[union-attr]

    @staticmethod
    def _down(conn: socket.socket, p: subprocess.Popen) -> None:
        try:
            while data := p.stdout.read1(65536):  # type: ignore[union-attr]
                conn.sendall(data)
        except (OSError, ValueError):
            pass
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            p.wait(timeout=5)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.server.close()
        with self.lock:
            procs, self.procs = self.procs, []
        for p in procs:
            if p.poll() is None:
                p.terminate()
        with contextlib.suppress(OSError):
            subprocess.run(["ssh", "-o", f"ControlPath={self.control}", "-O", "exit", "x"],
                           capture_output=True, timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)
