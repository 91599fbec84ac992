"""Address space, as pure decisions: the ingress networks' own range, and Docker's default pools.

Docker gives every network it creates without a subnet a whole block of its *default address
pools*; a stock engine has 31 (172.17-31.0.0/16 and 192.168.0.0/16 cut in /20s, docker0 takes
the first), so two networks per project stopped a server at 15 projects. ``deploy`` therefore
gives each ingress network ``P_luma`` a small subnet of a range of luma-compose's own:

- ``172.16.0.0/16`` by default: private (RFC 1918), and the one /16 of 172.16.0.0/12 that Docker's
  stock pools leave out, so the engine never hands it out itself; it is also clear of Docker
  Swarm's overlay pool (10.0.0.0/8), of the 10.x ranges clouds and Kubernetes use for VPCs and pods,
  and of 100.64.0.0/10, which Tailscale claims (it drops that range arriving from other interfaces).
- ``/26`` each: 61 addresses after the gateway, for the proxy and the routed containers, twice over
  during a rollout (old and new side by side): 30 routed replicas per project; 1024 projects per /16.

Set another range with ``--ingress-pool`` or ``$LUMA_INGRESS_POOL`` (``base=CIDR,size=N``, dockerd's
own spelling, or a bare CIDR for /26s).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..errors import UsageError

POOL_OPTION = "--ingress-pool"
POOL_ENV = "LUMA_INGRESS_POOL"
DEFAULT_BASE = "172.16.0.0/16"
DEFAULT_SIZE = 26
#: The smallest useful network: gateway, proxy and a few containers.
MAX_SIZE = 29

#: dockerd's built-in default address pools (libnetwork ipamutils), used when ``docker info``
#: reports none (an engine without ``default-address-pools`` in its daemon.json).
STOCK_POOLS: tuple[tuple[str, int], ...] = tuple((f"172.{n}.0.0/16", 16) for n in range(17, 32)) + \
    (("192.168.0.0/16", 20),)
#: Warn when fewer default pools than this are left after a deploy.
LOW_WATER = 5

#: The fix for exhausted default pools: Docker's own ranges cut into /24s (docker0 keeps 172.17.0.0/16),
#: and one range Docker never used, whose 256 networks are free at once, even while the existing
#: networks still hold the stock ranges: 1 + 512 + 256 + 256 = 1025 networks instead of 31. Applied
#: to a real dockerd (restart included) by tests/e2e/test_address_pools.py.
DAEMON_JSON_EXAMPLE = ('{"default-address-pools": [{"base": "172.17.0.0/16", "size": 16}, '
                       '{"base": "172.18.0.0/15", "size": 24}, {"base": "192.168.0.0/16", "size": 24}, '
                       '{"base": "10.200.0.0/16", "size": 24}]}')


def daemon_json_fix() -> str:
    return ("give Docker more, smaller default address pools: in /etc/docker/daemon.json set (merged with what "
            f"the file already holds)\n    {DAEMON_JSON_EXAMPLE}\n"
            "  then restart the engine (sudo systemctl restart docker; containers with a restart policy come back, "
            "existing networks keep their subnets). That is 1025 networks instead of 31; 10.200.0.0/16 is new "
            "address space, free at once: if your network uses it, choose another private range")


@dataclass(frozen=True)
class IngressPool:
    """The range the ingress networks' subnets come from, and their size (prefix length)."""

    base: ipaddress.IPv4Network
    size: int

    def __str__(self) -> str:
        return f"base={self.base},size={self.size}"

    @property
    def capacity(self) -> int:
        return 2 ** (self.size - self.base.prefixlen)


def default_pool() -> IngressPool:
    return IngressPool(ipaddress.IPv4Network(DEFAULT_BASE), DEFAULT_SIZE)


def parse_pool(text: str, where: str = POOL_OPTION) -> IngressPool:
    """``CIDR`` or ``base=CIDR[,size=N]`` -> the pool; a UsageError saying what is wrong otherwise."""
    how = f"give e.g. {where} base={DEFAULT_BASE},size={DEFAULT_SIZE} (or just a CIDR for /{DEFAULT_SIZE}s)"
    fields: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        key, eq, value = part.partition("=")
        if not eq and not fields:
            key, value = "base", part
        if key not in ("base", "size") or key in fields or not value:
            raise UsageError(f"{where} {text!r}: expected base=CIDR[,size=N], not {part!r}", how)
        fields[key] = value.strip()
    try:
        base = ipaddress.ip_network(fields.get("base", ""))
    except ValueError as e:
        raise UsageError(f"{where} {text!r}: {e}", how) from None
    if not isinstance(base, ipaddress.IPv4Network):
        raise UsageError(f"{where} {text!r}: the range must be IPv4", how)
    try:
        size = int(fields.get("size", DEFAULT_SIZE))
    except ValueError:
        raise UsageError(f"{where} {text!r}: size must be a prefix length such as {DEFAULT_SIZE}", how) from None
    if not base.prefixlen <= size <= MAX_SIZE:
        raise UsageError(f"{where} {text!r}: size must be between the range's /{base.prefixlen} and /{MAX_SIZE}", how)
    return IngressPool(base, size)


def _networks(subnets: Iterable[str]) -> list[ipaddress.IPv4Network]:
    out = []
    for s in subnets:
        try:
            n = ipaddress.ip_network(s, strict=False)
        except ValueError:
            continue
        if isinstance(n, ipaddress.IPv4Network):
            out.append(n)
    return out


def free_subnets(pool: IngressPool, used: Iterable[str]) -> Iterator[ipaddress.IPv4Network]:
    """The pool's subnets, in order, that overlap none of ``used`` (the engine's networks' subnets)."""
    taken = [n for n in _networks(used) if n.overlaps(pool.base)]
    for sub in pool.base.subnets(new_prefix=pool.size):
        if not any(sub.overlaps(t) for t in taken):
            yield sub


def default_pool_usage(pools: Sequence[tuple[str, int]] | None, used: Iterable[str]) -> tuple[int, int]:
    """(capacity, taken) of the engine's default address pools (``None``: the stock ones): how many
    networks they can give, and how many of those blocks existing networks already occupy."""
    blocks = [(ipaddress.IPv4Network(b), s) for b, s in (pools or STOCK_POOLS)]
    capacity = sum(2 ** (s - b.prefixlen) for b, s in blocks)
    taken: set[ipaddress.IPv4Network] = set()
    for n in _networks(used):
        for b, s in blocks:
            if not n.overlaps(b):
                continue
            n_in = n if n.subnet_of(b) else b
            if n_in.prefixlen >= s:
                taken.add(n_in.supernet(new_prefix=s))
            else:
                taken.update(n_in.subnets(new_prefix=s))
    return capacity, len(taken)


def pools_warning(capacity: int, taken: int, needed: int = 0) -> str | None:
    """A warning when the default pools cannot give ``needed`` more networks, or are nearly used up."""
    left = max(capacity - taken, 0)
    if needed > left:
        return (f"Docker's default address pools have {left} of {capacity} networks left and this deploy needs "
                f"{needed}: it would fail. Fix: {daemon_json_fix()}")
    if left - needed < LOW_WATER:
        return (f"Docker's default address pools are nearly used up: {left - needed} of {capacity} networks left "
                f"{'after this deploy ' if needed else ''}(each new project takes one). Fix: {daemon_json_fix()}")
    return None


__all__ = ["DAEMON_JSON_EXAMPLE", "IngressPool", "default_pool", "default_pool_usage", "free_subnets",
           "parse_pool", "pools_warning"]
