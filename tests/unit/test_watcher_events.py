"""Which Docker events make ``proxy run`` sync, and what a sync in a long-running process re-reads
(fake engine; the e2e tests in tests/e2e/test_proxy_operations.py run the real loop)."""

from __future__ import annotations

import pytest

from luma_compose import contract
from luma_compose.proxy import caddy_config, watcher
from luma_compose.errors import LumaError
from luma_compose.proxy.controller import Controller
from luma_compose.records import COMPOSE_PROJECT_LABEL
from support.fake_engine import FakeEngine
from support.records import routed


def network_event(action: str, network: str, container: str) -> dict:
    return {"Type": "network", "Action": action,
            "Actor": {"Attributes": {"name": network, "container": container, "type": "bridge"}}}


def synced() -> tuple[FakeEngine, Controller]:
    e = FakeEngine()
    ctl = Controller(e, "px")
    ctl.up(image="caddy:test", tls="off")
    e.add_network("gmail_luma", {contract.NETWORK_OWNER_LABEL: "true", COMPOSE_PROJECT_LABEL: "gmail"})
    e.add(routed("gmail", "web", hosts=("mail.test",)))
    assert ctl.sync().connected == ["gmail_luma"]
    return e, ctl


def test_the_proxys_own_attach_and_detach_make_no_sync_anyone_elses_does():
    e, ctl = synced()
    proxy = e.container("px").id
    for action in ("connect", "disconnect"):
        assert watcher.classify(ctl, network_event(action, "gmail_luma", proxy)) is None
        # a container attached by hand may answer to a routed name there (DNS shadowing): sync
        assert watcher.classify(ctl, network_event(action, "gmail_luma", "someone-else")) == "managed"
    # not an ingress network: nothing the proxy routes through
    assert watcher.classify(ctl, network_event("connect", "gmail_default", "someone-else")) is None


def test_before_the_first_sync_every_ingress_attach_counts():
    e = FakeEngine()
    ctl = Controller(e, "px")
    assert watcher.classify(ctl, network_event("connect", "gmail_luma", "")) == "managed"


def test_a_long_running_sync_compares_against_what_it_loaded_and_reloads_only_on_a_change():
    e, ctl = synced()
    px = e.container("px").id
    e.calls.clear()
    assert not ctl.sync().changed and e.calls == []  # nothing re-read from Caddy, nothing loaded
    e.add(routed("gmail", "api", hosts=("api.mail.test",)))
    assert ctl.sync().changed
    assert set(caddy_config.served_hosts(e.loaded[px])) == {"mail.test", "api.mail.test"}
    e.calls.clear()
    assert not ctl.sync().changed and e.calls == []
    # the proxy's config changed behind our back (forget: what proxy run does on a proxy event):
    # read from Caddy again and put right
    e.loaded[px] = caddy_config.build_config(ctl.table(e.container("px"))[0].__class__(), tls="off")
    ctl.forget()
    assert ctl.sync().changed
    assert set(caddy_config.served_hosts(e.loaded[px])) == {"mail.test", "api.mail.test"}
    ctl.forget()
    assert not ctl.sync().changed  # read back from Caddy: equal, nothing loaded


class ResetOnce(FakeEngine):
    """Caddy's admin server replaced under the first ``caddy reload`` (another process's load);
    the wget that posts first fails as busybox reports it, so the load falls back to ``caddy reload``."""

    def __init__(self, message: str, wget: str = "wget: error getting response: Connection reset by peer") -> None:
        super().__init__()
        self.message, self.wget, self.resets = message, wget, 0

    def exec(self, ref, argv):  # type: ignore[no-untyped-def]
        if list(argv[:2]) == ["sh", "-c"] and "/load" in argv[2] and self.resets == 0:
            return 1, "", self.wget
        if list(argv[:2]) == ["caddy", "reload"] and self.resets == 0:
            self.resets += 1
            return 1, "", self.message
        return super().exec(ref, argv)


UNANSWERED = ('{"level":"error","msg":"sending configuration to instance: performing request: Post '
              '\\"http://localhost:2019/load\\": read tcp 127.0.0.1:59112->127.0.0.1:2019: read: connection reset by peer"}')


def test_a_load_whose_request_was_reset_unanswered_is_sent_again():
    e = ResetOnce(UNANSWERED)
    ctl = Controller(e, "px")
    ctl.up(image="caddy:test", tls="off")
    e.add_network("gmail_luma", {contract.NETWORK_OWNER_LABEL: "true", COMPOSE_PROJECT_LABEL: "gmail"})
    e.add(routed("gmail", "web", hosts=("mail.test",)))
    assert ctl.sync().changed and e.resets == 1
    assert caddy_config.served_hosts(e.loaded[e.container("px").id]) == {"mail.test": "gmail/web"}


def test_a_config_caddy_rejects_is_not_sent_again():
    e = ResetOnce('{"level":"error","msg":"loading config: decoding request body: invalid character"}',
                  "wget: server returned error: HTTP/1.1 400 Bad Request")
    ctl = Controller(e, "px")
    ctl.up(image="caddy:test", tls="off")
    e.add_network("gmail_luma", {contract.NETWORK_OWNER_LABEL: "true", COMPOSE_PROJECT_LABEL: "gmail"})
    e.add(routed("gmail", "web", hosts=("mail.test",)))
    with pytest.raises(LumaError, match="rejected the config: .*invalid character"):
        ctl.sync()
    assert [c for c in e.calls if c[0] == "caddy reload"] == []
