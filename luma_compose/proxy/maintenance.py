"""The maintenance page as Caddy serves it, on one host and on a swarm's edges. Pure: no Docker.

A route in maintenance (:mod:`luma_compose.routing.maintenance`) answers every request with 503,
``Retry-After``, and the page: the default one with the message (HTML-escaped), or the user's
``--page`` as-is. Caddy expands ``{...}`` placeholders in a static response's body, so every brace
of the page is escaped (``\\{``): Caddy writes it back literally, and a page holding
``{env.SECRET}`` shows that text, never the proxy's environment.
"""

from __future__ import annotations

import html
from typing import Any

from ..records import MaintenanceRecord
from ..routing.maintenance import DEFAULT_MESSAGE

#: Seconds a client (a crawler, a CDN) is told to wait before asking again.
RETRY_AFTER = "300"
STATUS = 503

_DEFAULT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Down for maintenance</title>
<style>body { font-family: system-ui, sans-serif; max-width: 36em; margin: 15vh auto; padding: 0 1em; color: #222; }</style>
</head>
<body>
<h1>Down for maintenance</h1>
<p>%s</p>
</body>
</html>
"""


def page(rec: MaintenanceRecord) -> str:
    """The HTML body served: the user's page as-is, or the default page with the message."""
    if rec.page:
        return rec.page
    return _DEFAULT_PAGE % html.escape(rec.message or DEFAULT_MESSAGE)


def escape_placeholders(text: str) -> str:
    """Text Caddy's replacer writes back unchanged: each brace escaped (``\\{`` is a literal ``{``)."""
    return text.replace("{", "\\{").replace("}", "\\}")


def handler(rec: MaintenanceRecord) -> dict[str, Any]:
    """The Caddy handler of a route in maintenance."""
    return {
        "handler": "static_response",
        "status_code": STATUS,
        "headers": {
            "Content-Type": ["text/html; charset=utf-8"],
            "X-Content-Type-Options": ["nosniff"],
            "Retry-After": [RETRY_AFTER],
            "Cache-Control": ["no-store"],
        },
        "body": escape_placeholders(page(rec)),
    }
