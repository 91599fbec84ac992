"""One engine interface per target (luma_compose/engine/protocols.py), and the real engines and the
fakes of the unit tests satisfy it method for method: same names, same parameters (name, kind,
default). A fake that drifts from its real engine fails here, so the unit tests never decide on an
engine that does not exist."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.fake_engine import FakeCompose, FakeEngine  # noqa: E402
from support.fake_swarm import FakeSwarm  # noqa: E402

from luma_compose.engine import protocols  # noqa: E402
from luma_compose.engine.compose_cli import Compose  # noqa: E402
from luma_compose.engine.docker_engine import DockerEngine  # noqa: E402
from luma_compose.engine.swarm import SwarmEngine  # noqa: E402


def methods(protocol: type) -> dict[str, inspect.Signature]:
    return {n: inspect.signature(f) for n, f in vars(protocol).items() if callable(f) and not n.startswith("_")}


def shape(sig: inspect.Signature) -> list[tuple[str, inspect._ParameterKind, object]]:
    """What a caller relies on: each parameter's name, kind and default (annotations are documentation)."""
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def disagreements(protocol: type, cls: type) -> list[str]:
    """Where ``cls`` does not satisfy ``protocol``: a method missing or with other parameters."""
    out = []
    for name, want in methods(protocol).items():
        got = getattr(cls, name, None)
        if got is None or not callable(got):
            out.append(f"{cls.__name__}.{name} is missing")
        elif shape(inspect.signature(got)) != shape(want):
            out.append(f"{cls.__name__}.{name}{inspect.signature(got)} is not {name}{want}")
    return out


PAIRS = [
    (protocols.Engine, DockerEngine), (protocols.Engine, FakeEngine),
    (protocols.SwarmEngineProtocol, SwarmEngine), (protocols.SwarmEngineProtocol, FakeSwarm),
    (protocols.Compose, Compose), (protocols.Compose, FakeCompose),
]


@pytest.mark.parametrize("protocol, cls", PAIRS, ids=lambda x: x.__name__)
def test_the_real_engines_and_the_fakes_satisfy_their_protocol(protocol, cls):
    assert disagreements(protocol, cls) == []


@pytest.mark.parametrize("real, fake", [(DockerEngine, FakeEngine), (SwarmEngine, FakeSwarm)],
                         ids=lambda x: x.__name__)
def test_every_public_method_of_a_real_engine_is_in_its_protocol(real, fake):
    # an operation added to a real engine but left out of the protocol would escape the check above
    protocol = protocols.Engine if real is DockerEngine else protocols.SwarmEngineProtocol
    public = {n for n, f in vars(real).items() if callable(f) and not n.startswith("_")}
    assert public == set(methods(protocol))


class _Drifted(FakeSwarm):
    def service(self, name: str, fresh: bool = False):  # a parameter the real engine does not take
        return super().service(name)

    def remove_service(self, service: str) -> bool:  # another name for the parameter
        return super().remove_service(service)

    def tasks(self, service: str = ""):  # a default the real engine does not have
        return super().tasks(service)


class _Missing:
    def require_manager(self) -> None: ...


@pytest.mark.parametrize("cls, want", [
    (_Drifted, ["_Drifted.service(", "_Drifted.tasks(", "_Drifted.remove_service("]),
    (_Missing, ["_Missing.kernel_version is missing", "_Missing.services is missing"]),
], ids=["drifted", "missing"])
def test_the_check_fails_for_a_fake_that_drifts(cls, want):
    found = disagreements(protocols.SwarmEngineProtocol, cls)
    for w in want:
        assert any(f.startswith(w) for f in found), (w, found)
    assert len(found) == len(want) if cls is _Drifted else True, found


def test_callers_annotate_their_engine_with_the_protocol():
    """The controller, deploy and the swarm proxy name the protocol, not a real engine class."""
    pkg = Path(protocols.__file__).resolve().parents[1]
    for path in [*pkg.glob("deploy/*.py"), *pkg.glob("proxy/*.py"), *pkg.glob("swarm/*.py")]:
        text = path.read_text()
        assert "import DockerEngine" not in text and "import SwarmEngine\n" not in text, path
        assert "SwarmEngine," not in text.replace("SwarmEngineProtocol", ""), path
