"""Issue 12.3/12.4 in the pure parts: the ACME issuer options, HTTP/3 and Alt-Svc in the Caddy config,
and reading certificate expiry for ``proxy status``."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone

import pytest

from luma_compose.proxy import caddy_config, certs
from luma_compose.routing.containers import build_table
from support.records import routed as routed_record


def table():
    return build_table([routed_record("gmail", "web", hosts=("mail.test",), ip="10.0.0.2")], {})


def issuer(cfg):
    return cfg["apps"]["tls"]["automation"]["policies"][0]["issuers"][0]


def test_acme_ca_root_and_challenges():
    cfg = caddy_config.build_config(table(), acme_ca="https://ca.test/dir", acme_ca_root="/etc/luma/r.pem",
                                    tls_alpn=False)
    assert issuer(cfg) == {"module": "acme", "ca": "https://ca.test/dir", "trusted_roots_pem_files": ["/etc/luma/r.pem"],
                           "challenges": {"tls-alpn": {"disabled": True}}}
    assert issuer(caddy_config.build_config(table())) == {"module": "acme"}  # defaults unchanged


def test_http3_off_or_advertised_at_the_published_port():
    def server(cfg):
        return cfg["apps"]["http"]["servers"][caddy_config.SERVER_NAME]

    off = server(caddy_config.build_config(table(), tls="internal", http3=False))
    assert off["protocols"] == ["h1", "h2"]
    same = server(caddy_config.build_config(table(), tls="internal", alt_svc_port=443))
    assert "protocols" not in same and "@id" in same["routes"][0]  # Caddy's own header is right
    moved = server(caddy_config.build_config(table(), tls="internal", alt_svc_port=18943))
    assert moved["routes"][0]["handle"][0]["response"]["set"]["Alt-Svc"] == ['h3=":18943"; ma=2592000']
    assert caddy_config.served_hosts({"apps": {"http": {"servers": {"luma": moved}}}}) == {"mail.test": "gmail/web"}


def test_certificate_expiry_and_states(tmp_path):
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                        str(crt), "-days", "30", "-subj", "/CN=mail.test"], capture_output=True)
    if p.returncode != 0:  # pragma: no cover
        pytest.fail("openssl is needed (scripts/test installs it)")
    pem = crt.read_text()
    out = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", str(crt)], capture_output=True, text=True)
    want = datetime.strptime(out.stdout.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)
    assert certs.not_after(pem) == want
    files = {"/data/caddy/certificates/ca.test-dir/mail.test/mail.test.crt": pem}
    log = '{"level":"error","msg":"could not get certificate from issuer","identifier":"bad.test","error":"HTTP 400"}'
    got = {s.host: s for s in certs.states(["mail.test", "bad.test", "new.test"], files, log)}
    assert got["mail.test"].state == "valid" and got["mail.test"].issuer == "ca.test-dir"
    assert got["bad.test"].state == "failing" and "HTTP 400" in got["bad.test"].error
    assert got["new.test"].state == "pending"
    later = datetime(2999, 1, 1, tzinfo=timezone.utc)
    assert certs.states(["mail.test"], files, "", now=later)[0].state == "expired"
