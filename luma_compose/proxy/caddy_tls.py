"""The HTTPS side of one host's Caddy config (pure): HTTP/3 or not, the plain-HTTP server that
redirects known hosts to HTTPS, and the certificate issuer. :func:`.caddy_config.assemble` puts them
together."""

from __future__ import annotations

from typing import Any


def http3(server: dict[str, Any], http3: bool, alt_svc_port: int | None, https_port: int) -> None:
    """HTTP/3 off (``h1, h2``: no ``Alt-Svc``), or advertised on the published UDP port."""
    if not http3:
        server["protocols"] = ["h1", "h2"]
    elif alt_svc_port and alt_svc_port != https_port:
        # Caddy advertises the port it listens on; clients must be told the published one.
        server["routes"].insert(0, {"handle": [{"handler": "headers", "response": {
            "set": {"Alt-Svc": [f'h3=":{alt_svc_port}"; ma=2592000']}, "deferred": True}}]})


def redirect_server(hosts: list[str], http_port: int, public_https_port: int,
                     not_found: dict[str, Any]) -> dict[str, Any]:
    """Plain HTTP gets its own server: known hosts are redirected to HTTPS, unknown hosts get the
    same 404 (Caddy's automatic redirects would send every host to HTTPS, where an unknown one fails
    the TLS handshake instead of getting a 404)."""
    port_part = "" if public_https_port in (443, 0) else f":{int(public_https_port)}"
    redirect: list[dict[str, Any]] = []
    if hosts:
        redirect.append({
            "match": [{"host": hosts}],
            "handle": [{
                "handler": "static_response",
                "status_code": 308,
                # The only placeholders in the config: Caddy's own, never a label value.
                "headers": {"Location": [f"https://{{http.request.host}}{port_part}{{http.request.uri}}"]},
            }],
            "terminal": True,
        })
    return {"listen": [f":{http_port}"], "routes": redirect + [not_found], "automatic_https": {"disable": True}}


def issuer(config: dict[str, Any], tls: str, email: str | None, acme_ca: str | None, acme_ca_root: str | None,
            tls_alpn: bool) -> dict[str, Any]:
    """The certificate issuer for ``tls`` (internal: Caddy's own CA, added to ``config``; else ACME)."""
    if tls == "internal":
        # Never try to install Caddy's root into a trust store.
        config["apps"]["pki"] = {"certificate_authorities": {"local": {"install_trust": False}}}
        return {"module": "internal"}
    issuer: dict[str, Any] = {"module": "acme"}
    if email:
        issuer["email"] = email
    if acme_ca:
        issuer["ca"] = acme_ca
    if acme_ca_root:
        issuer["trusted_roots_pem_files"] = [acme_ca_root]
    if not tls_alpn:
        issuer["challenges"] = {"tls-alpn": {"disabled": True}}
    return issuer
