"""Access control (issue 22 item 3): `basic_auth` and `allow` in x-luma, the labels, the guards in
Caddy's JSON on one host and on a swarm's edges. One validator for `check` and for the proxy's
label reader; a bad label withholds only its own route. Pure: no Docker."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import bcrypt
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.records import routed  # noqa: E402

from luma_compose.engine.swarm_state import service_record
from luma_compose import api, contract, validate  # noqa: E402
from luma_compose.proxy import caddy_config, guards  # noqa: E402
from luma_compose.records import ContainerRecord, NetworkAttachment  # noqa: E402
from luma_compose.routing import services  # noqa: E402
from luma_compose.routing.containers import build_table  # noqa: E402
from luma_compose.swarm import routes as edge_layout  # noqa: E402

T1 = "2026-01-01T00:00:01Z"


def bcrypt_hash(password: str, prefix: str = "$2y$") -> str:
    """What `htpasswd -B` writes ($2y$), or another bcrypt spelling."""
    return prefix + bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()[4:]


GOOD = bcrypt_hash("s3cret")
B64 = base64.b64encode(GOOD.encode()).decode()

WEAK = {
    "an MD5 hash": "$apr1$Vp8B3pQe$Zb8y1mS7wYcl0q0oSbX1e/",
    "a SHA-1 hash": "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
    "a crypt(3) hash": "$6$saltsalt$" + "a" * 86,
    "a DES crypt hash": "rl0uy3lmwqQNQ",
    "a plain-text password": "hunter2 is my password",
    "a malformed bcrypt hash": "$2y$10$tooshort",
}


# ------------------------------------------------------------------ the validator (check and proxy)

@pytest.mark.parametrize("prefix", ["$2y$", "$2b$", "$2a$"])
def test_every_bcrypt_spelling_is_accepted(prefix):
    entries, problems = validate.htpasswd_entries(f"# staff\n\nalice:{bcrypt_hash('x', prefix)}\n")
    assert problems == [] and [u for u, _ in entries] == ["alice"]


@pytest.mark.parametrize("kind, hashed", list(WEAK.items()))
def test_a_weak_or_malformed_entry_is_refused_naming_line_user_and_fix_never_the_hash(kind, hashed):
    text = f"alice:{GOOD}\nbob:{hashed}\n"
    entries, problems = validate.htpasswd_entries(text)
    assert len(problems) == 1, problems
    assert "line 2" in problems[0] and "'bob'" in problems[0] and kind in problems[0]
    assert "htpasswd -B" in problems[0]
    assert hashed not in problems[0]


# ids of their own: GOOD is salted anew in each process, and ids naming it would differ between the
# collections of two pytest-xdist workers (which must be identical)
@pytest.mark.parametrize("text, why", [
    ("", "no user"),
    ("alice\n", "not `user:hash`"),
    (f"al ice:{GOOD}\n", "user name"),
    (f"{{http.request.host}}:{GOOD}\n", "user name"),
    (f"alice:{GOOD}\nalice:{GOOD}\n", "listed twice"),
    ("".join(f"u{i}:{GOOD}\n" for i in range(validate.MAX_USERS + 1)), "more than"),
], ids=["empty", "no-hash", "space-in-user", "placeholder-user", "twice", "too-many"])
def test_an_htpasswd_file_the_proxy_cannot_serve_is_refused(text, why):
    assert any(why in p for p in validate.htpasswd_entries(text)[1])


def test_allow_entries_are_networks_normalised_and_bounded():
    assert validate.cidr("192.168.1.7") == ("192.168.1.7/32", None)
    assert validate.cidr("2001:db8::/32") == ("2001:db8::/32", None)
    assert "write 10.0.0.0/8" in validate.cidr("10.1.2.3/8")[1]
    for bad in ("{http.request.remote.host}", "10.0.0.0/33", "example.com", "10.0.0.0/8 ", "${NET}", ""):
        assert validate.cidr(bad)[0] is None, bad
    huge = [f"10.{i // 256}.{i % 256}.0/24" for i in range(validate.MAX_ALLOW + 1)]
    assert "more than" in validate.allow_problem(huge) and "wider networks" in validate.allow_problem(huge)
    assert validate.allow_problem(huge[:validate.MAX_ALLOW]) is None


# ------------------------------------------------------------------ check and render

def _project(tmp_path: Path, htpasswd: str | None, xluma_extra: str) -> Path:
    d = tmp_path / "shop"
    d.mkdir()
    if htpasswd is not None:
        (d / "users.htpasswd").write_text(htpasswd)
    (d / "compose.yaml").write_text(
        "services:\n  web:\n    image: nginx:alpine\n    x-luma:\n      hosts: shop.test\n      port: 80\n"
        + xluma_extra)
    return d / "compose.yaml"


def test_render_puts_users_and_networks_into_labels(tmp_path):
    f = _project(tmp_path, f"alice:{GOOD}\n", "      basic_auth: ./users.htpasswd\n"
                 "      allow: [10.0.0.0/8, '2001:db8::/32', 192.168.1.7]\n")
    result = api.render([str(f)])
    assert result.ok, result.problems
    labels = result.routes[0].labels("shop")
    assert labels[contract.LABEL_BASIC_AUTH] == f"alice:{B64}"
    assert labels[contract.LABEL_ALLOW] == "10.0.0.0/8,2001:db8::/32,192.168.1.7/32"
    assert f"{contract.LABEL_BASIC_AUTH}: alice:{B64}" in result.text
    assert "$2y$" not in result.text  # no `$` for Compose to interpolate
    assert api.render([str(f)]).text == result.text


@pytest.mark.parametrize("kind", list(WEAK))
def test_check_refuses_a_weak_entry_at_the_basic_auth_key(tmp_path, kind):
    f = _project(tmp_path, f"alice:{GOOD}\nbob:{WEAK[kind]}\n", "      basic_auth: ./users.htpasswd\n")
    problems = api.check([str(f)])
    assert len(problems) == 1
    p = problems[0]
    assert (p.line, p.file.endswith("compose.yaml")) == (7, True)
    assert "'bob'" in p.message and kind in p.message and "htpasswd -B" in p.message + p.hint


@pytest.mark.parametrize("extra, why", [
    ("      basic_auth: ./missing.htpasswd\n", "cannot read the htpasswd file"),
    ("      basic_auth: ${AUTH_FILE}\n", "uses a variable"),
    ("      allow: ['{http.request.header.X}']\n", "not an IP network"),
    ("      allow: [10.1.2.3/8]\n", "host bits"),
    ("      allow: []\n", "allow"),
    ("      allow: [" + ", ".join(f"10.0.{i}.0/24" for i in range(validate.MAX_ALLOW + 1)) + "]\n", "more than"),
])
def test_check_refuses_bad_access_settings_with_a_clear_message(tmp_path, extra, why):
    f = _project(tmp_path, f"alice:{GOOD}\n", extra)
    problems = api.check([str(f)])
    assert problems and any(why in p.message for p in problems), [p.message for p in problems]
    assert all(p.line >= 5 for p in problems)


# ------------------------------------------------------------------ the proxy's label reader

def _guarded(**labels: str) -> ContainerRecord:
    return routed("shop", "web", hosts=("shop.test",), labels=labels)


@pytest.mark.parametrize("labels, why", [
    ({contract.LABEL_BASIC_AUTH: "alice:" + base64.b64encode(WEAK["an MD5 hash"].encode()).decode()}, "MD5"),
    ({contract.LABEL_BASIC_AUTH: "alice:" + base64.b64encode(b"plain").decode()}, "plain-text"),
    ({contract.LABEL_BASIC_AUTH: f"alice:{GOOD}"}, "not base64"),
    ({contract.LABEL_BASIC_AUTH: "{http.request.header.Authorization}:" + B64}, "user name"),
    ({contract.LABEL_BASIC_AUTH: f"alice:{B64},alice:{B64}"}, "listed twice"),
    ({contract.LABEL_BASIC_AUTH: ",".join(f"u{i}:{B64}" for i in range(validate.MAX_USERS + 1))}, "more than"),
    ({contract.LABEL_ALLOW: "{http.request.remote.host}"}, "not an IP network"),
    ({contract.LABEL_ALLOW: "0.0.0.0/0\",\"match\":[{}]"}, "not an IP network"),
    ({contract.LABEL_ALLOW: ",".join(f"10.0.{i}.0/24" for i in range(validate.MAX_ALLOW + 1))}, "more than"),
    ({contract.LABEL_ALLOW: ""}, "not an IP network"),  # present but empty: never "everyone"
])
def test_a_bad_access_label_withholds_only_its_route_on_both_targets(labels, why):
    other = routed("blog", "web", hosts=("blog.test",))
    one_host = build_table([_guarded(**labels), other])
    assert [r.key for r in one_host.routes] == ["blog/web"]
    assert any(why in p and "shop-web-1" in p for p in one_host.problems), one_host.problems
    svc = {"CreatedAt": T1, "Spec": {"Name": "shop_web", "Labels": {
        **contract.route_labels("shop", "web", ["shop.test"], 3000, "/up"), contract.STACK_NAMESPACE_LABEL: "shop",
        **labels}}}
    swarm = services.table([service_record(svc)])
    assert swarm.routes == () and any(why in p for p in swarm.problems), swarm.problems


def test_valid_access_labels_reach_the_route_and_never_its_output():
    t = build_table([_guarded(**contract.access_labels((("alice", GOOD),), ("10.0.0.0/8",)))])
    (r,) = t.routes
    assert r.basic_auth == (("alice", B64),) and r.allow == ("10.0.0.0/8",)
    out = json.dumps(t.to_json())
    assert B64 not in out and GOOD not in out
    assert r.to_json()["access"] == {"basic_auth": ["alice"], "allow": ["10.0.0.0/8"]}


# ------------------------------------------------------------------ Caddy's JSON

def _handlers(config: dict, route_id: str) -> list[dict]:
    server = config["apps"]["http"]["servers"][caddy_config.SERVER_NAME]
    return next(r["handle"] for r in server["routes"] if r.get("@id") == caddy_config.route_handle_id(route_id))


def test_one_host_a_guarded_route_checks_address_then_password_before_proxying():
    labels = contract.access_labels((("alice", GOOD),), ("203.0.113.0/24",))
    t = build_table([_guarded(**labels), routed("blog", "web", hosts=("blog.test",))])
    config = caddy_config.build_config(t, tls="off", http_port=80, relays=("172.17.0.1",))
    guard, proxy = _handlers(config, "shop/web")
    assert proxy["handler"] == "reverse_proxy"
    exempt, relayed, outside, auth = guard["routes"]
    assert exempt == {"match": [{"remote_ip": {"ranges": guards.LOOPBACK}}], "terminal": True}
    assert relayed["match"] == [{"remote_ip": {"ranges": ["172.17.0.1"]}}]
    assert outside["match"] == [{"not": [{"client_ip": {"ranges": ["203.0.113.0/24"]}}]}]
    assert outside["handle"][0]["status_code"] == 403
    basic = auth["handle"][0]["providers"]["http_basic"]
    assert basic["accounts"] == [{"username": "alice", "password": B64}] and basic["hash"] == {"algorithm": "bcrypt"}
    assert "errors" not in guard  # the reverse_proxy's errors go to the server's routes (replay, 503)
    errors = config["apps"]["http"]["servers"][caddy_config.SERVER_NAME]["errors"]["routes"]
    assert errors[0] == guards.AUTH_ERROR and errors[1]["match"][0]["expression"] == caddy_config.REPLAY_MATCH
    assert [h["handler"] for h in _handlers(config, "blog/web")] == ["reverse_proxy"]


def test_a_table_without_access_control_gives_the_config_it_gave_before():
    t = build_table([routed("blog", "web", hosts=("blog.test",))])
    config = caddy_config.build_config(t, tls="off", http_port=80, relays=("172.17.0.1",))
    assert config == caddy_config.build_config(t, tls="off", http_port=80)
    assert "basic_auth" not in caddy_config.dumps(config) and "subroute" not in caddy_config.dumps(config)


def test_the_relays_are_the_gateways_of_the_proxys_own_networks():
    c = ContainerRecord(id="p", name="luma-proxy", labels={}, created="", networks={
        "bridge": NetworkAttachment("172.17.0.2", (), "172.17.0.1"),
        "shop_luma": NetworkAttachment("10.5.0.3", (), "10.5.0.1")})
    assert guards.relays(c) == ("172.17.0.1",)


def test_swarm_edges_guard_the_same_way():
    labels = contract.access_labels((("alice", GOOD),), ("203.0.113.0/24",))
    svc = {"CreatedAt": T1, "Spec": {"Name": "shop_web", "Labels": {
        **contract.route_labels("shop", "web", ["shop.test"], 3000, "/up"), contract.STACK_NAMESPACE_LABEL: "shop",
        **labels}}}
    plain = {"CreatedAt": T1, "Spec": {"Name": "blog_web", "Labels": {
        **contract.route_labels("blog", "web", ["blog.test"], 3000, "/up"), contract.STACK_NAMESPACE_LABEL: "blog"}}}
    config = edge_layout.edge_config(services.table([service_record(svc), service_record(plain)]))
    guard, proxy = _handlers(config, "shop/web")
    assert guard == guards.guard(("203.0.113.0/24",), (("alice", B64),), edge_layout.EDGE_RELAYS)
    assert proxy["handler"] == "reverse_proxy"
    assert [h["handler"] for h in _handlers(config, "blog/web")] == ["reverse_proxy"]
    errors = config["apps"]["http"]["servers"][caddy_config.SERVER_NAME]["errors"]["routes"]
    assert errors[0] == guards.AUTH_ERROR
    # the shared constant is not changed for the next config
    assert caddy_config.UNAVAILABLE_ERRORS["routes"][0] != guards.AUTH_ERROR


# ------------------------------------------------------------------ deploy's HTTPS check

def _tls_server(tmp_path: Path, response: bytes):
    """A one-shot TLS server on loopback answering ``response``: (port, thread)."""
    import datetime
    import socket
    import ssl
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = srv.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(4096)
            tls.sendall(response)
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv.getsockname()[1], t


@pytest.mark.parametrize("response, want", [
    (b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"restricted\"\r\nLuma-Guard: basic_auth\r\n"
     b"Content-Length: 0\r\n\r\n", (401, "basic_auth")),
    (b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", (401, "")),  # the app's own 401: not the guard
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", (200, "")),
])
def test_deploys_https_check_tells_the_guards_answer_from_the_apps(tmp_path, response, want):
    from luma_compose.deploy.checks import https_status

    port, t = _tls_server(tmp_path, response)
    assert https_status("127.0.0.1", port, "shop.test", "/up") == want
    t.join(5)
