"""A config load resets no waiting connection: the proxy's containers get tcp_migrate_req where
the kernel has it, and never ask for it where it does not (they would not start)."""

import pytest

from luma_compose.proxy import handover
from luma_compose.proxy.container import Settings
from luma_compose.proxy.controller import proxy_spec


@pytest.mark.parametrize("kernel, expected", [
    ("6.18.44-fc-v1272", True), ("5.14.0-70.13.1.el9_0.x86_64", True), ("5.15.0-91-generic", True),
    ("5.13.19", False), ("5.10.0-28-amd64", False), ("4.19.0", False), ("3.10.0-1160.el7", False),
    ("", False), ("unknown", False), ("10.0", True),
])
def test_the_migrate_setting_follows_the_kernel(kernel, expected):
    assert handover.kernel_supports_migrate(kernel) is expected
    assert bool(handover.listener_sysctls(kernel)) is expected


def test_the_proxy_container_asks_for_it_only_on_a_kernel_that_has_it():
    s = Settings(tls="off", http="8080", https="0")
    assert proxy_spec("px", "img", s, "v", "6.1.0-18-amd64").sysctls == {handover.MIGRATE_SYSCTL: "1"}
    assert proxy_spec("px", "img", s, "v", "5.10.0-28-amd64").sysctls == {}
