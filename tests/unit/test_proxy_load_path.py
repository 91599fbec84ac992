"""How a sync reaches Caddy (issue 19 item 3), on the fake engine: one file per load, copied while
the proxy joins a new network and removed once loaded, the load only after the attach, and the
proxy looked at again after an attach only when Docker picks one of its ports.

Timings are bench/scale.py --profile's; the e2e tests (tests/e2e/test_proxy.py) load real configs."""

from __future__ import annotations

import threading

from luma_compose import contract
from luma_compose.proxy import caddy_config
from luma_compose.proxy.container import CONF_DIR
from luma_compose.proxy.controller import Controller
from luma_compose.records import COMPOSE_PROJECT_LABEL
from support.fake_engine import FakeEngine
from support.records import routed


class Watched(FakeEngine):
    """Records every config copy (with the thread it ran on) and every look at the proxy."""

    def __init__(self) -> None:
        super().__init__()
        self.copies: list[tuple[str, bool]] = []
        self.looks = 0

    def put_file(self, ref, path, data, mode=0o600):  # type: ignore[no-untyped-def]
        if path.startswith(CONF_DIR + "/load-"):
            self.copies.append((path, threading.current_thread() is threading.main_thread()))
            self.calls.append(("copy", path))
        return super().put_file(ref, path, data, mode)

    def container(self, ref):  # type: ignore[no-untyped-def]
        self.looks += ref == "px"
        return super().container(ref)


def world(**up) -> tuple[Watched, Controller]:
    e = Watched()
    ctl = Controller(e, "px")
    ctl.up(image="caddy:test", tls="off", **up)
    ctl.sync()
    e.add_network("gmail_luma", {contract.NETWORK_OWNER_LABEL: "true", COMPOSE_PROJECT_LABEL: "gmail"})
    e.add(routed("gmail", "web", hosts=("mail.test",)))
    e.calls.clear()
    e.copies.clear()
    return e, ctl


def test_the_copy_runs_beside_the_attach_and_the_load_follows_the_attach():
    e, ctl = world()
    res = ctl.sync()
    assert res.changed and res.connected == ["gmail_luma"]
    [(path, on_main)] = e.copies  # one copy, on another thread, and no second one for the load
    assert not on_main
    order = [c[0] for c in e.calls]
    assert order.index("connect") < order.index("caddy reload")
    assert caddy_config.served_hosts(e.loaded[e.container("px").id]) == {"mail.test": "gmail/web"}
    assert not any(p.startswith(CONF_DIR + "/load-") for _, p in e.files)  # removed once loaded


def test_each_load_posts_its_own_file():
    e, ctl = world()
    ctl.sync()
    e.add(routed("gmail", "api", hosts=("api.mail.test",)))
    ctl.sync()  # no new network: copied on this thread, just before the load
    assert len({p for p, _ in e.copies}) == 2 and e.copies[1][1]
    assert not any(p.startswith(CONF_DIR + "/load-") for _, p in e.files)


def test_the_proxy_is_looked_at_again_after_an_attach_only_when_docker_picks_a_port():
    for http, again in (("8080", 0), ("0", 1)):
        e, ctl = world(http_port=http)
        e.looks = 0
        ctl.sync()
        assert e.looks == 1 + again, http  # the sync's own look at the running proxy, then maybe one more
