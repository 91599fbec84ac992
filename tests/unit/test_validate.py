"""The strict validation shared by check (x-luma) and the proxy (labels). Pure."""

from __future__ import annotations

import pytest

from luma_compose import validate


@pytest.mark.parametrize("host", ["mail.example.com", "*.example.com", "a", "x-1.y2.test", "a" * 63 + ".test"])
def test_dns_names_pass(host):
    assert validate.host_problem(host) is None
    assert validate.safe_for_caddy(host)


@pytest.mark.parametrize("host", [
    "{http.request.host}", "mail.example.com{env.NOPE}", "${HOST}", "$HOST", "mail.example.com:443",
    "https://mail.example.com", "mail.example.com/", "*", "*.*.example.com", "a.*.example.com", "-a.test",
    "a-.test", "a..test", "", " a.test", "a.test ", "Mail.Example.com", "a" * 64 + ".test", "ä.test",
    "a.test\n", "a\\.test", "a'.test", '"a.test"',
])
def test_everything_else_fails(host):
    assert validate.host_problem(host)


def test_hosts_labels():
    assert validate.hosts_problem("a.test,b.test") is None
    assert validate.hosts_problem(" , ") and validate.hosts_problem("a.test,{x}")


@pytest.mark.parametrize("path, ok", [
    ("/up", True), ("/", True), ("/health/live?full=1", True), ("/a%20b", True),
    ("up", False), ("/up{http.request.host}", False), ("/up?$x", False), ("/up x", False), ("/up\"", False),
    ("", False), ("/up\\", False),
])
def test_health_paths(path, ok):
    assert (validate.health_path_problem(path) is None) is ok
    if ok:
        assert validate.safe_for_caddy(path)


def test_names_and_ports():
    assert validate.project_problem("gmail") is None and validate.project_problem("Gmail")
    assert validate.project_problem("a{b}") and validate.project_problem("_a")
    assert validate.service_problem("web.v2_x-y") is None and validate.service_problem("web{x}")
    assert validate.port_problem("3000") is None and validate.port_problem(65535) is None
    for bad in ("0", "65536", "03000", "3000 ", "x"):
        assert validate.port_problem(bad)
    assert validate.container_name_problem("gmail-web-1--luma-draining") is None
    assert validate.container_name_problem("{x}")


@pytest.mark.parametrize("value", ["{a}", "$a", "a b", "a\\b", "a'b", 'a"b', "a\tb"])
def test_safe_for_caddy_is_the_last_line_of_defence(value):
    assert not validate.safe_for_caddy(value)
