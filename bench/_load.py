"""A closed-loop HTTP/1.1 load generator for the latency tail: N keep-alive connections, each
sends its next GET as soon as the last answer is read (like ``hey -c N``), and every request is
recorded: when it started, how long it took, its status, whether it opened a new connection.

Why not hey: hey's CSV output (the only way to get each request's time from it) silently leaves
out the requests that failed, and its summary has no percentile above p99. (Its "DNS+dialup"
slowest figure is the slowest *request*, whatever made it slow: hey 0.1.4 prints the overall
fastest/slowest on that line, which made issue 14 look like a connect problem.)

A request sent on a reused connection that the server closed before answering is sent once more
on a new connection, as browsers and Go clients do (Caddy closes idle client connections at
every config load); the retry is counted, and its time is part of the request's time.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass


@dataclass
class Result:
    start: float  # seconds since the load began
    latency: float  # seconds, including any reconnect and retry
    status: int  # 0: failed (see error)
    new_conn: bool = False  # a new TCP connection was opened for this request
    retried: bool = False  # sent again after a reused connection was closed under it
    error: str = ""


def _read_response(sock: socket.socket, buf: bytearray) -> tuple[int, bool]:
    """(status, keep-alive) of one response with a Content-Length body; raises when cut short."""
    while True:
        i = buf.find(b"\r\n\r\n")
        if i >= 0:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response" if not buf else "closed mid-response")
        buf += chunk
    lines = bytes(buf[:i]).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close = 0, lines[0].startswith("HTTP/1.0")
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        if k == "content-length":
            length = int(v)
        elif k == "connection":
            close = v.strip().lower() == "close"
        elif k == "transfer-encoding":
            raise ConnectionError("chunked responses are not supported by this client")
    need = i + 4 + length
    while len(buf) < need:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        buf += chunk
    del buf[:need]
    return status, not close


def run(addr: tuple[str, int], host: str, connections: int, duration: float,
        stop: threading.Event | None = None, timeout: float = 10.0) -> tuple[list[Result], float]:
    """Load ``addr`` for ``duration`` seconds (or until ``stop`` is set); (results, seconds)."""
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: luma-bench\r\nAccept: */*\r\n\r\n".encode()
    stop = stop or threading.Event()
    per_conn: list[list[Result]] = [[] for _ in range(connections)]
    t_start = time.perf_counter()
    deadline = t_start + duration

    def worker(out: list[Result]) -> None:
        sock: socket.socket | None = None
        buf = bytearray()
        while not stop.is_set() and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            r = Result(t0 - t_start, 0.0, 0)
            for attempt in (0, 1):
                reused = sock is not None
                try:
                    if sock is None:
                        sock = socket.create_connection(addr, timeout=timeout)
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        buf.clear()
                        r.new_conn = True
                    sock.sendall(request)
                    r.status, keep = _read_response(sock, buf)
                    if not keep:
                        sock.close()
                        sock = None
                    break
                except (OSError, ValueError, IndexError) as e:  # ConnectionError is an OSError
                    got_bytes = bool(buf)
                    if sock is not None:
                        sock.close()
                        sock = None
                    if reused and attempt == 0 and not got_bytes:
                        r.retried = True
                        continue
                    r.status, r.error = 0, f"{type(e).__name__}: {e}"
                    break
            r.latency = time.perf_counter() - t0
            out.append(r)
        if sock is not None:
            sock.close()

    threads = [threading.Thread(target=worker, args=(per_conn[i],), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for rs in per_conn for r in rs], time.perf_counter() - t_start


SLOW = 0.5  # seconds: the threshold for a request nobody should wait for


@dataclass
class Tail:
    requests: int
    rps: float
    p50: float
    p99: float
    p999: float
    p9999: float
    max: float
    slow: int  # requests over SLOW seconds
    non2xx: int
    errors: int
    new_conns: int
    retried: int

    def line(self) -> str:
        ms = lambda s: f"{1000 * s:7.1f}"  # noqa: E731
        return (f"{self.requests:7d} req {self.rps:6.0f}/s  p50 {ms(self.p50)}  p99 {ms(self.p99)}  "
                f"p99.9 {ms(self.p999)}  p99.99 {ms(self.p9999)}  max {ms(self.max)} ms  "
                f">{SLOW:g}s {self.slow}  non-2xx {self.non2xx}  errors {self.errors}  "
                f"new conns {self.new_conns}  retried {self.retried}")


def tail(results: list[Result], seconds: float) -> Tail:
    """Percentiles (nearest rank) over every request, failed ones included at their time."""
    lat = sorted(r.latency for r in results) or [0.0]
    n = len(lat)

    def q(p: float) -> float:
        return lat[min(n - 1, max(0, int(p * n + 0.5) - 1))]

    return Tail(len(results), len(results) / max(seconds, 1e-9), q(0.5), q(0.99), q(0.999), q(0.9999), lat[-1],
                sum(x > SLOW for x in lat), sum(1 for r in results if r.status and not 200 <= r.status < 300),
                sum(1 for r in results if r.error), sum(r.new_conn for r in results),
                sum(r.retried for r in results))
