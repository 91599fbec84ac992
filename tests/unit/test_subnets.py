"""Issue 19 item 2, the pure part: which subnet an ingress network gets, and how full Docker's default pools are."""

from __future__ import annotations

import ipaddress
import json

import pytest

from luma_compose.deploy import subnets
from luma_compose.deploy.subnets import IngressPool, default_pool_usage, free_subnets, parse_pool, pools_warning
from luma_compose.errors import UsageError


def pool(text: str = "172.16.0.0/16,size=26") -> IngressPool:
    return parse_pool(text)


@pytest.mark.parametrize("text, base, size", [
    ("172.16.0.0/16", "172.16.0.0/16", 26),
    ("base=10.99.0.0/20", "10.99.0.0/20", 26),
    ("base=10.99.0.0/20,size=27", "10.99.0.0/20", 27),
    ("size=24,base=10.99.0.0/20", "10.99.0.0/20", 24),
    ("10.99.0.0/20,size=28", "10.99.0.0/20", 28),
    (" base=10.99.0.0/24 , size=24 ", "10.99.0.0/24", 24),
])
def test_a_pool_is_read_in_dockerds_spelling_or_as_a_bare_range(text, base, size):
    p = parse_pool(text)
    assert (str(p.base), p.size) == (base, size)


@pytest.mark.parametrize("text, says", [
    ("", "expected base=CIDR"),
    ("size=26", "does not appear to be"),              # no base
    ("base=172.16.0.1/16", "host bits set"),         # not a network address
    ("base=fd00::/64", "must be IPv4"),
    ("base=172.16.0.0/16,size=x", "size must be a prefix length"),
    ("base=172.16.0.0/24,size=16", "between the range's /24 and /29"),  # bigger than the range
    ("base=172.16.0.0/16,size=30", "between the range's /16 and /29"),  # too small for gateway + proxy + app
    ("base=172.16.0.0/16,mask=26", "not 'mask=26'"),
    ("base=172.16.0.0/16,base=10.0.0.0/8", "not 'base=10.0.0.0/8'"),
])
def test_a_bad_pool_is_a_usage_error_naming_the_option_and_a_good_value(text, says):
    with pytest.raises(UsageError) as e:
        parse_pool(text, "--ingress-pool")
    assert says in e.value.message and e.value.message.startswith("--ingress-pool")
    assert "base=172.16.0.0/16,size=26" in e.value.hint


def test_the_default_range_is_outside_dockers_stock_pools_swarm_and_tailscale():
    p = subnets.default_pool()
    assert (str(p.base), p.size, p.capacity) == ("172.16.0.0/16", 26, 1024)
    assert p.base.is_private
    for theirs in [b for b, _ in subnets.STOCK_POOLS] + ["10.0.0.0/8", "100.64.0.0/10"]:
        assert not p.base.overlaps(ipaddress.ip_network(theirs)), theirs
    # the daemon.json the fix proposes never hands out our range either
    for b in json.loads(subnets.DAEMON_JSON_EXAMPLE)["default-address-pools"]:
        assert not p.base.overlaps(ipaddress.ip_network(b["base"])), b


def first(p: IngressPool, used: list[str], n: int = 1) -> list[str]:
    it = free_subnets(p, used)
    return [str(next(it)) for _ in range(n)]


def test_subnets_come_in_order_from_the_start_of_the_range():
    assert first(pool(), [], 3) == ["172.16.0.0/26", "172.16.0.64/26", "172.16.0.128/26"]


@pytest.mark.parametrize("used, expect", [
    (["172.16.0.0/26"], "172.16.0.64/26"),                    # the same subnet
    (["172.16.0.0/24"], "172.16.1.0/26"),                     # a bigger one covering several
    (["172.16.0.16/28"], "172.16.0.64/26"),                   # a smaller one inside the first
    (["172.16.0.0/16"], None),                                # the whole range
    (["172.0.0.0/8"], None),                                  # more than the whole range
    (["172.17.0.0/16", "192.168.0.0/20", "fd00::/64"], "172.16.0.0/26"),  # outside, and IPv6: ignored
    (["not a subnet", "172.16.0.0/26"], "172.16.0.64/26"),    # junk from the engine is skipped
])
def test_every_way_a_subnet_can_be_taken_is_skipped(used, expect):
    got = next(free_subnets(pool(), used), None)
    assert (str(got) if got else None) == expect


def test_a_full_range_yields_nothing_and_a_hole_is_found():
    p = pool("10.9.0.0/24,size=26")
    used = ["10.9.0.0/26", "10.9.0.128/25"]
    assert [str(s) for s in free_subnets(p, used)] == ["10.9.0.64/26"]
    assert list(free_subnets(p, used + ["10.9.0.64/26"])) == []


def test_stock_pools_hold_31_networks_and_count_the_blocks_existing_networks_sit_in():
    assert default_pool_usage(None, []) == (31, 0)
    # docker0, two /16s, two /20s of 192.168, one network given its own subnet inside a pool block,
    # one outside every pool (ours), a duplicate, IPv6
    used = ["172.17.0.0/16", "172.18.0.0/16", "172.19.0.0/16", "192.168.0.0/20", "192.168.16.0/20",
            "172.20.5.0/24", "172.16.0.0/26", "172.18.0.0/16", "fd00::/64"]
    assert default_pool_usage(None, used) == (31, 6)


def test_configured_pools_are_counted_from_what_the_engine_reports():
    pools = [("10.210.0.0/16", 24), ("172.17.0.0/16", 16)]
    assert default_pool_usage(pools, []) == (257, 0)
    # a /23 given by hand covers two /24 blocks; a /16 covering the whole pool covers all of it
    assert default_pool_usage(pools, ["10.210.0.0/24", "10.210.2.0/23"]) == (257, 3)
    assert default_pool_usage(pools, ["10.210.0.0/16"]) == (257, 256)


def test_the_warning_comes_before_the_pools_run_out_and_names_the_fix():
    assert pools_warning(31, 20) is None
    low = pools_warning(31, 27)
    assert "4 of 31 networks left" in low and "default-address-pools" in low and "daemon.json" in low
    assert pools_warning(31, 24, needed=2) is None
    assert "after this deploy" in pools_warning(31, 25, needed=3)
    fail = pools_warning(31, 31, needed=1)
    assert "0 of 31 networks left and this deploy needs 1: it would fail" in fail
    assert subnets.DAEMON_JSON_EXAMPLE in fail and "systemctl restart docker" in fail


def test_the_daemon_json_example_is_valid_json_with_room_at_once_even_when_the_stock_ranges_are_full():
    doc = json.loads(subnets.DAEMON_JSON_EXAMPLE)
    pools = [(p["base"], p["size"]) for p in doc["default-address-pools"]]
    assert default_pool_usage(pools, []) == (1025, 0)
    # a server whose 30 networks fill every stock block still gets 256 new networks
    full = ["172.17.0.0/16"] + [f"172.{n}.0.0/16" for n in range(18, 32)] + [f"192.168.{16 * i}.0/20" for i in range(16)]
    assert default_pool_usage(None, full) == (31, 31)
    assert default_pool_usage(pools, full) == (1025, 1025 - 256)
    assert pools[0] == ("172.17.0.0/16", 16)  # docker0 keeps its stock range
