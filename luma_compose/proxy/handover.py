"""Config loads that reset no client connection.

Caddy binds a new listening socket (``SO_REUSEPORT``) for every config it loads and closes the old
one when the old config stops. Linux resets every connection still waiting in a closed listener's
accept queue: a client connecting during a load got ``connection reset by peer`` (measured: 50
resets over 60 loads at 50 new connections per second per client; one in a swarm e2e run). With
``net.ipv4.tcp_migrate_req`` (Linux >= 5.14) the kernel hands those connections to the new socket
instead. The setting is per network namespace, so it is set on the proxy's containers only.
"""

from __future__ import annotations

import re

MIGRATE_SYSCTL = "net.ipv4.tcp_migrate_req"
#: The first kernel with ``tcp_migrate_req``; on an older one the setting does not exist and a
#: container asking for it would not start.
MIGRATE_KERNEL = (5, 14)


def kernel_supports_migrate(kernel: str) -> bool:
    """Whether a kernel version as the engine reports it (``6.1.0-18-amd64``) has the setting."""
    m = re.match(r"\s*(\d+)\.(\d+)", kernel or "")
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= MIGRATE_KERNEL


def listener_sysctls(kernel: str) -> dict[str, str]:
    """The sysctls the proxy's containers get on an engine with this kernel."""
    return {MIGRATE_SYSCTL: "1"} if kernel_supports_migrate(kernel) else {}
