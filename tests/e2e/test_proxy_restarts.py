"""Issue 10, right after restarts, with no luma-compose process running: every host serves its
own service, never another one, within 5 s. Real engine, real compose, real Caddy.

After the proxy's first sync, these tests run no ``luma-compose`` command until they check:
the data plane must be correct by itself. The engine restart runs on a private dockerd of this
test's own (tests/support/private_engine.py); the shared engine is never restarted.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import dockerkit as dk
import proxykit as pk

WITHIN = 5.0  # seconds: the bound


def watch(proxy: pk.Proxy, expect: dict[str, str], until: float) -> dict[str, list[tuple[float, int, str]]]:
    """GET every host again and again until ``until`` (monotonic); (t, code, body) per host."""
    seen: dict[str, list[tuple[float, int, str]]] = {h: [] for h in expect}
    while time.monotonic() < until:
        for h in expect:
            code, body = proxy.get(h, timeout=10)
            seen[h].append((time.monotonic(), code, body))
        time.sleep(0.05)
    return seen


def first_good(seen: list[tuple[float, int, str]], prefix: str) -> float | None:
    """Time from which every answer is 200 from ``prefix`` (None: not by the end)."""
    t = None
    for at, code, body in seen:
        if code == 200 and body.startswith(prefix):
            t = at if t is None else t
        else:
            t = None
    return t


def wrong(seen: list[tuple[float, int, str]], prefix: str) -> list[tuple[int, str]]:
    """Answers from a service that is not this host's (any 200 not from ``prefix``, any 404)."""
    return [(code, body) for _, code, body in seen
            if (code == 200 and not body.startswith(prefix)) or code == 404]


@pytest.fixture
def mail(tmp_path, busybox_image, caddy_image):
    """gmail: web on mail.X.test and api on api.mail.X.test, behind a synced proxy."""
    with contextlib.ExitStack() as stack:
        proxy = stack.enter_context(pk.proxy(pk.SHARED, caddy_image, "--tls", "off"))
        name = dk.unique("gmail")
        hosts = {"web": f"mail.{name}.test", "api": f"api.mail.{name}.test"}
        proj = stack.enter_context(pk.project(pk.SHARED, tmp_path, name, busybox_image,
                                              {s: {"hosts": [h]} for s, h in hosts.items()}))
        proxy.sync(check=True)
        for s, h in hosts.items():
            assert pk.serves(proxy, h, f"{name}/{s}/") == {(200, f"{name}/{s}/"): 10}
        yield proxy, proj, hosts


def test_an_ip_swap_never_sends_a_host_to_another_service(mail):
    proxy, proj, hosts = mail
    before = {s: proj.ip(s) for s in hosts}
    dk.docker("stop", "-t", "1", proj.container("web"), proj.container("api"))
    # the engine gives the lowest free address: the one that had the higher address starts first
    first, second = sorted(hosts, key=lambda s: tuple(int(x) for x in before[s].split(".")), reverse=True)
    dk.docker("start", proj.container(first))
    dk.docker("start", proj.container(second))
    after = {s: proj.ip(s) for s in hosts}
    assert after == {"web": before["api"], "api": before["web"]}, (before, after)  # the swap happened
    t0 = time.monotonic()
    seen = watch(proxy, {h: f"{proj.name}/{s}/" for s, h in hosts.items()}, t0 + WITHIN + 1)
    for s, h in hosts.items():
        prefix = f"{proj.name}/{s}/"
        assert wrong(seen[h], prefix) == [], f"{h} reached another service: {Counter(wrong(seen[h], prefix))}"
        good = first_good(seen[h], prefix)
        assert good is not None and good - t0 <= WITHIN, Counter((c, b[:60]) for _, c, b in seen[h])


def test_a_restarted_or_killed_container_gets_its_host_back_by_itself(mail):
    proxy, proj, hosts = mail
    h, prefix = hosts["web"], f"{proj.name}/web/"
    dk.docker("restart", "-t", "1", proj.container("web"))
    t0 = time.monotonic()
    seen = watch(proxy, {h: prefix}, t0 + WITHIN + 1)
    assert wrong(seen[h], prefix) == []
    good = first_good(seen[h], prefix)
    assert good is not None and good - t0 <= WITHIN, Counter((c, b[:60]) for _, c, b in seen[h])
    # killed, not restarted: the route stays (503 after Caddy's retry window), never a 404
    dk.docker("kill", proj.container("web"))
    code, body = proxy.get(h, timeout=20)
    assert code == 503, (code, body)
    dk.docker("start", proj.container("web"))
    t0 = time.monotonic()
    seen = watch(proxy, {h: prefix}, t0 + WITHIN + 1)
    assert wrong(seen[h], prefix) == []
    good = first_good(seen[h], prefix)
    assert good is not None and good - t0 <= WITHIN, Counter((c, b[:60]) for _, c, b in seen[h])
    # the other service never noticed
    assert pk.serves(proxy, hosts["api"], f"{proj.name}/api/") == {(200, f"{proj.name}/api/"): 10}


def _hey(address: str, port: int, host: str, seconds: int, concurrency: int = 4) -> tuple[Counter, list[str]]:
    exe = shutil.which("hey")
    assert exe, "hey is missing (scripts/test installs it)"
    p = subprocess.run([exe, "-z", f"{seconds}s", "-c", str(concurrency), "-host", host, "-t", "20",
                        f"http://{address}:{port}/"], capture_output=True, text=True, timeout=seconds + 60)
    codes: Counter = Counter()
    errors: list[str] = []
    section = ""
    for line in p.stdout.splitlines():
        if line.startswith("Status code distribution"):
            section = "codes"
        elif line.startswith("Error distribution"):
            section = "errors"
        elif section == "codes" and (m := re.match(r"\s*\[(\d+)\]\s+(\d+) responses", line)):
            codes[int(m.group(1))] += int(m.group(2))
        elif section == "errors" and line.strip():
            errors.append(line.strip())
        elif section and not line.strip() and codes:
            section = "" if section == "errors" else section
    return codes, errors


def test_a_single_replica_restarting_under_load_fails_no_request(mail):
    proxy, proj, hosts = mail
    h = hosts["web"]
    result: dict = {}

    def load():
        result["codes"], result["errors"] = _hey("127.0.0.1", proxy.port, h, 10)

    import threading

    t = threading.Thread(target=load)
    t.start()
    time.sleep(2)
    dk.docker("restart", "-t", "1", proj.container("web"))
    t.join(120)
    codes, errors = result["codes"], result["errors"]
    assert sum(codes.values()) > 100, (codes, errors)
    assert set(codes) == {200} and errors == [], (codes, errors)


def test_a_restarted_proxy_serves_its_routes_at_once(mail):
    proxy, proj, hosts = mail
    dk.docker("restart", "-t", "1", proxy.name)
    t0 = time.monotonic()
    seen = watch(proxy, {h: f"{proj.name}/{s}/" for s, h in hosts.items()}, t0 + WITHIN + 1)
    for s, h in hosts.items():
        prefix = f"{proj.name}/{s}/"
        assert wrong(seen[h], prefix) == [], Counter(wrong(seen[h], prefix))
        good = first_good(seen[h], prefix)
        assert good is not None and good - t0 <= WITHIN, Counter((c, b[:60]) for _, c, b in seen[h])


# --------------------------------------------------------------------------- engine restart


@pytest.fixture
def private_engine(busybox_image, caddy_image):
    from private_engine import PrivateEngine

    if os.geteuid() != 0:
        pytest.fail("the engine-restart test runs a private dockerd and must run as root")
    with PrivateEngine.started("lp" + dk.RUN_ID[:6]) as eng:
        eng.load_image(busybox_image)
        eng.load_image(caddy_image)
        yield eng


def test_after_an_engine_restart_every_host_serves_its_own_service(private_engine, busybox_image, caddy_image,
                                                                    tmp_path):
    eng = private_engine
    engine = pk.Engine(env=eng.env, address=eng.ns_ip)
    with contextlib.ExitStack() as stack:
        # fixed port inside the namespace: a restarted engine publishes it again the same way
        proxy = stack.enter_context(pk.proxy(engine, caddy_image, "--tls", "off", http_port="0.0.0.0:18080"))
        name, evil = dk.unique("gmail"), dk.unique("evil")
        hosts = {"web": f"mail.{name}.test", "api": f"api.mail.{name}.test"}
        always = {"restart": "unless-stopped"}
        proj = stack.enter_context(pk.project(engine, tmp_path, name, busybox_image,
                                              {s: {"hosts": [h], **always} for s, h in hosts.items()}))
        proxy.sync()
        # a later project claims gmail's host: it loses, and must still lose after the restart
        stack.enter_context(pk.project(engine, tmp_path, evil, busybox_image,
                                       {"web": {"hosts": [hosts["web"], f"{evil}.test"], **always}}))
        proxy.sync()
        for s, h in hosts.items():
            assert pk.serves(proxy, h, f"{name}/{s}/") == {(200, f"{name}/{s}/"): 10}

        eng.restart()  # a reboot in miniature: every container stops, and comes back by its policy
        t0 = time.monotonic()
        expect = {**hosts, "evil": f"{evil}.test"}
        prefixes = {hosts["web"]: f"{name}/web/", hosts["api"]: f"{name}/api/", f"{evil}.test": f"{evil}/web/"}
        seen = watch(proxy, {h: prefixes[h] for h in expect.values()}, t0 + 20)
        for h, prefix in prefixes.items():
            assert wrong(seen[h], prefix) == [], f"{h}: {Counter(wrong(seen[h], prefix))}"
            good = first_good(seen[h], prefix)
            assert good is not None, Counter((c, b[:60]) for _, c, b in seen[h])
        # within 5 s of the last of our containers running again
        started = max(_started_at(engine, c) for c in engine.docker("ps", "-q").split())
        for h, prefix in prefixes.items():
            good = first_good(seen[h], prefix)
            assert good - t0 <= max(started - t0, 0) + WITHIN, (h, good - t0, started - t0)


def _started_at(engine: pk.Engine, cid: str) -> float:
    """The monotonic time a container (re)started, from the engine's StartedAt."""
    from datetime import datetime, timezone

    raw = engine.inspect(cid)["State"]["StartedAt"]
    head, _, frac = raw.rstrip("Z").partition(".")
    at = datetime.fromisoformat(head).replace(tzinfo=timezone.utc).timestamp() + float("0." + (frac or "0"))
    return time.monotonic() - (time.time() - at)
