"""Certificates on a swarm (issue 24): a job on a proxy node lists the public .crt files of the edges' shared
storage; `status --swarm` shows each host's state and expiry (and what needs attention) as one host does,
and the edges' metrics serve luma_certificate_expiry_timestamp_seconds{host}. On the fake swarm; the e2e
proof is tests/e2e/test_swarm.py::test_https_on_a_swarm_one_certificate_for_every_node."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.fake_swarm import FakeSwarm  # noqa: E402

from luma_compose import contract  # noqa: E402
from luma_compose.engine import swarm_state as ss  # noqa: E402
from luma_compose.proxy import certs, observe  # noqa: E402
from luma_compose.records import Mount  # noqa: E402
from luma_compose.swarm import certs as swarm_certs  # noqa: E402
from luma_compose.swarm import metrics as sm  # noqa: E402
from luma_compose.swarm import proxy as swarm_proxy  # noqa: E402
from luma_compose.swarm import routes  # noqa: E402
from luma_compose.swarm import watch as swarm_watch  # noqa: E402

PROM = sm.EdgeMetrics(9180, ("203.0.113.7/32",))
ACME = routes.EdgeTLS("acme", 8443)
ISSUER = "acme-v02.api.letsencrypt.org-directory"


@pytest.fixture(autouse=True)
def no_sleep_no_cache(monkeypatch):
    monkeypatch.setattr(swarm_proxy.time, "sleep", lambda s: None)
    monkeypatch.setattr(swarm_watch.time, "sleep", lambda s: None)
    swarm_certs._cache.clear()
    yield
    swarm_certs._cache.clear()


def pem(host: str, days: float) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=90))
            .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def listing(**days: float) -> list[str]:
    """What the job prints for certificates of host (``shop_test`` is shop.test) valid for ``days``."""
    out = []
    for h, d in days.items():
        host = h.replace("_", ".")
        out += [f"==> /data/caddy/certificates/{ISSUER}/{host}/{host}.crt", *pem(host, d).splitlines()]
    return out


def shop() -> FakeSwarm:
    fake = FakeSwarm()
    fake.add_stack_service("shop", "web", "shop.test")
    fake.add_stack_service("blog", "web", "blog.test")
    return fake


def up(fake: FakeSwarm, tls=ACME, metrics=None, storage="/srv/shared") -> None:
    swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None).up(
        "caddy:test", 8080, tls=tls, storage=storage if tls.on else "", metrics=metrics, nodes="label=edge=yes")


def status_swarm(monkeypatch, fake: FakeSwarm) -> tuple[int, dict]:
    from click.testing import CliRunner

    from luma_compose.cli import status as status_cli
    from luma_compose.cli.main import main

    monkeypatch.setattr(status_cli, "swarm_engine", lambda: fake)
    r = CliRunner().invoke(main, ["status", "--swarm", "--name", "px", "--format", "json"])
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, json.loads(r.output)


def cert_of(view: dict, project: str) -> dict:
    [svc] = [s for p in view["projects"] if p["project"] == project for s in p["services"]]
    [c] = svc["certificates"]
    return c


def expiry_series(fake: FakeSwarm) -> list[str]:
    name = fake.services_["px-config"].configs[routes.EDGE_CONFIG_TARGET]
    body = json.loads(fake.config_data[name])["apps"]["http"]["servers"][observe.METRICS_SERVER]["routes"][2]
    return [x for x in body["handle"][0]["body"].splitlines() if x.startswith(observe.CERT_EXPIRY + "{")]


# ---------------------------------------------------------------- the job


def test_the_job_mounts_the_edges_storage_read_only_on_their_nodes_with_their_image_and_prints_no_key():
    fake = shop()
    up(fake)
    edge = fake.services_["px"]
    spec = swarm_certs.job_spec(edge, "px-certs-1")
    assert spec.mode == "replicated-job" and spec.image == edge.image == "caddy:test"
    assert spec.mounts == (Mount("bind", "/srv/shared", routes.STORAGE_TARGET, readonly=True),)
    assert spec.constraints == edge.constraints == ("node.labels.edge==yes",)
    assert spec.networks == () and spec.publish == () and spec.restart_condition == "none"
    assert spec.labels == {contract.SWARM_ROLE_LABEL: "certs", contract.SWARM_PROXY_LABEL: "px"}
    script = " ".join(spec.command)
    assert "-name '*.crt'" in script and ".key" not in script
    # a volume the volume driver shares is mounted as a volume
    import dataclasses

    vol = dataclasses.replace(edge, labels={**edge.labels, contract.SWARM_STORAGE_LABEL: "certs-vol"})
    assert swarm_certs.job_spec(vol, "j").mounts[0] == Mount("volume", "certs-vol", "/data", readonly=True)


def test_the_job_argv_asks_no_registry_and_mounts_read_only():
    fake = shop()
    up(fake)
    argv = ss.job_argv(swarm_certs.job_spec(fake.services_["px"], "px-certs-1"))
    assert argv[:4] == ["service", "create", "--detach", "--no-resolve-image"]
    assert argv[argv.index("--mode") + 1] == "replicated-job"
    assert argv[argv.index("--mount") + 1] == "type=bind,source=/srv/shared,target=/data,readonly"
    assert argv[argv.index("--restart-condition") + 1] == "none"
    assert argv[argv.index("--log-driver") + 1] == "json-file"
    assert "--network" not in argv and argv[-4:-2] == ["caddy:test", "sh"]
    assert ss.job_log_argv("j") == ["service", "logs", "--raw", "--no-trunc", "j"]
    assert ss.service_stderr_argv("px", 400)[-3:] == ["--tail", "400", "px"]
    assert ss.config_text('"aGVsbG8="\n') == "hello"


def test_the_listing_is_read_as_one_hosts_listing():
    lines = listing(shop_test=30)
    files = certs.parse_listing(lines)
    assert list(files) == [f"/data/caddy/certificates/{ISSUER}/shop.test/shop.test.crt"]
    [s] = certs.states(["shop.test"], files, "")
    assert s.state == "valid" and s.issuer == ISSUER


# ---------------------------------------------------------------- status --swarm


def test_status_swarm_shows_each_hosts_certificate_state_and_expiry(monkeypatch):
    fake = shop()
    up(fake)
    fake.job_output = listing(shop_test=60, blog_test=60)
    code, view = status_swarm(monkeypatch, fake)
    assert code == 0, view
    for project in ("shop", "blog"):
        c = cert_of(view, project)
        assert (c["state"], c["issuer"]) == ("valid", ISSUER) and c["not_after"].endswith("Z")
    assert len(fake.jobs) == 1 and not [s for s in fake.services_ if "certs" in s]  # one job, gone again
    assert view["proxy"]["in_sync"] is True


@pytest.mark.parametrize("days, says", [(5, "shop/web: certificate of shop.test expires"),
                                        (-1, "shop/web: certificate of shop.test expired")])
def test_status_swarm_needs_attention_for_a_certificate_expiring_within_14_days_or_expired(monkeypatch, days, says):
    fake = shop()
    up(fake)
    fake.job_output = listing(shop_test=days, blog_test=60)
    code, view = status_swarm(monkeypatch, fake)
    notes = [a for p in view["projects"] for a in p["attention"]]
    assert code == 1 and any(n.startswith(says) for n in notes), notes
    assert not [n for n in notes if "blog" in n]


def test_status_swarm_a_host_without_certificate_is_pending_or_failing_from_the_edges_log(monkeypatch):
    fake = shop()
    up(fake)
    fake.job_output = []
    fake.stderr["px"] = json.dumps({"level": "error", "msg": "could not get certificate from issuer",
                                    "identifier": "blog.test", "error": "HTTP 400 urn:ietf:params:acme:error"})
    code, view = status_swarm(monkeypatch, fake)
    assert cert_of(view, "shop")["state"] == "pending"
    assert cert_of(view, "blog")["state"] == "failing"
    notes = [a for p in view["projects"] for a in p["attention"]]
    assert code == 1 and any("certificate of blog.test failing: could not get certificate" in n for n in notes)


def test_status_swarm_says_why_when_the_job_fails_and_goes_on(monkeypatch):
    fake = shop()
    up(fake)
    fake.job_error = "the job px-certs-1 did not complete (tasks: rejected): no such image"
    code, view = status_swarm(monkeypatch, fake)
    assert code == 1
    assert any("cannot read the certificates in the edges' storage: the job" in a for a in view["attention"])
    assert all(s["certificates"] == [] for p in view["projects"] for s in p["services"])


def test_with_tls_off_no_job_runs(monkeypatch):
    fake = shop()
    up(fake, tls=routes.EdgeTLS(), metrics=PROM)
    swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None).sync()
    code, view = status_swarm(monkeypatch, fake)
    assert code == 0 and fake.jobs == [] and view["proxy"]["tls"] == "off"
    assert all(s["certificates"] == [] for p in view["projects"] for s in p["services"])
    assert expiry_series(fake) == []


# ---------------------------------------------------------------- the edges' metrics


def test_sync_with_metrics_serves_each_hosts_expiry_and_reads_at_most_every_10_minutes(monkeypatch):
    fake = shop()
    up(fake, metrics=PROM)
    assert fake.jobs == []  # a new edge: nothing to read yet
    fake.job_output = listing(shop_test=60)
    px = swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None)
    px.sync()
    [series] = expiry_series(fake)
    want = certs.not_after(pem("x", 60))
    assert series.startswith('luma_certificate_expiry_timestamp_seconds{host="shop.test"} ')
    assert abs(int(series.split()[-1]) - want.timestamp()) < 60
    assert len(fake.jobs) == 1
    # within 10 minutes: no new job, even for a renewal (as on one host)
    fake.job_output = listing(shop_test=90, blog_test=90)
    px.sync()
    assert len(fake.jobs) == 1 and len(expiry_series(fake)) == 1
    # 10 minutes later: read again, and the renewal is served
    clock = swarm_certs.time.monotonic() + swarm_certs.CACHE_SECONDS + 1
    monkeypatch.setattr(swarm_certs.time, "monotonic", lambda: clock)
    px.sync()
    assert len(fake.jobs) == 2 and len(expiry_series(fake)) == 2


def test_a_renewal_since_the_last_sync_is_no_drift_in_status_swarm(monkeypatch):
    fake = shop()
    up(fake, metrics=PROM)
    fake.job_output = listing(shop_test=60)
    swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None).sync()
    swarm_certs._cache.clear()
    fake.job_output = listing(shop_test=90)  # renewed by the edges since
    code, view = status_swarm(monkeypatch, fake)
    assert view["proxy"]["in_sync"] is True, view
    assert len(fake.jobs) == 2  # status read once, and the config it compared used that read
    # a real difference is still drift
    fake.add_stack_service("new", "web", "new.test")
    _, view = status_swarm(monkeypatch, fake)
    assert view["proxy"]["in_sync"] is False


def test_a_job_that_fails_in_a_sync_leaves_the_series_out_and_the_sync_goes_on():
    fake = shop()
    up(fake, metrics=PROM)
    fake.job_error = "no such image"
    swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None).sync()
    assert expiry_series(fake) == [] and len(fake.jobs) == 1


def test_metrics_off_runs_no_job_in_a_sync_and_proxy_down_removes_a_job_left_over():
    from luma_compose.records import ServiceSpec

    fake = shop()
    up(fake)
    swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None).sync()
    assert fake.jobs == []
    fake.create_service(ServiceSpec("px-certs-dead", "caddy:test", labels={contract.SWARM_ROLE_LABEL: "certs",
                                                                           contract.SWARM_PROXY_LABEL: "px"}))
    swarm_proxy.SwarmProxy(fake, "px", log=lambda s: None).down()
    assert "px-certs-dead" not in fake.services_


# ---------------------------------------------------------------- the real engine's wait (its docker CLI stubbed)


class _Stubbed:
    """SwarmEngine with its docker CLI answered by a list of task states per poll."""

    def __init__(self, polls: list[list[str]], error: str = ""):
        from luma_compose.engine.client import Endpoint
        from luma_compose.engine.swarm import SwarmEngine

        self.polls, self.error, self.argv = polls, error, []
        self.engine = SwarmEngine(Endpoint("unix:///nowhere.sock"))
        self.engine._run = self._run  # type: ignore[method-assign]
        self.engine.tasks = self._tasks  # type: ignore[method-assign]

    def _run(self, *args, **kw):
        import subprocess

        self.argv.append(list(args))
        out = self.error if "{{.Error}}" in args else ("==> /data/x.crt\nPEM\n" if args[:2] == ("service", "logs") else "")
        return subprocess.CompletedProcess(args, 0, out, "")

    def _tasks(self, name):
        from luma_compose.records import TaskRecord

        states = self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]
        return [TaskRecord("complete", s, "") for s in states]


def test_the_engine_waits_for_the_jobs_tasks_to_end_and_always_removes_it(monkeypatch):
    from luma_compose.errors import SwarmError

    spec = swarm_certs.job_spec(_edge(), "px-certs-1")
    monkeypatch.setattr("time.sleep", lambda s: None)
    ok = _Stubbed([[], ["pending"], ["running"], ["complete"]])
    assert ok.engine.run_job(spec) == ["==> /data/x.crt", "PEM"]
    assert ok.argv[0][:4] == ["service", "create", "--detach", "--no-resolve-image"]
    assert ok.argv[-1] == ["service", "rm", "px-certs-1"]
    # a task that fails (a mount the node lacks): the task's error, at once, and the job is removed
    bad = _Stubbed([["rejected"]], error='invalid mount config for type "bind": bind source path does not exist\n')
    with pytest.raises(SwarmError, match="failed \\(rejected\\): invalid mount config"):
        bad.engine.run_job(spec)
    assert bad.argv[-1] == ["service", "rm", "px-certs-1"]
    # a job that never ends (no node to run on): the timeout, and the job is removed
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr("time.monotonic", lambda: next(clock))
    stuck = _Stubbed([["pending"]])
    with pytest.raises(SwarmError, match="did not finish within 30s \\(tasks: pending\\)"):
        stuck.engine.run_job(spec)
    assert stuck.argv[-1] == ["service", "rm", "px-certs-1"]


def _edge():
    fake = shop()
    up(fake)
    return fake.services_["px"]
