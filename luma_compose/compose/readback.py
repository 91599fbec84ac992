"""Compose's model as the judge of a merged render: pure comparison, no Docker here.

``docker compose config --format json`` of the rendered text must equal that of the input files (every
profile) plus exactly what the contract adds: on each routed service the ``luma.*`` labels and the
``luma`` network with its alias, and the project's ingress network. :func:`difference` says where the
two differ (None when they do not); the engine runs Compose (:mod:`..engine.compose_cli`).
"""

from __future__ import annotations

import copy
import re
from typing import Any, Mapping

from .. import contract


def _contract_problem(model_out: dict, project: str, routes: list[contract.RoutedService],
                      exact_labels: bool) -> str | None:
    """What is wrong with the contract's own additions in Compose's model of the output."""
    services = model_out.get("services") or {}
    for r in routes:
        svc = services.get(r.service) or {}
        want = r.labels(project)
        got = {k: v for k, v in (svc.get("labels") or {}).items() if k.startswith(contract.LABEL_PREFIX)}
        if set(got) != set(want) or (exact_labels and got != want):
            return f"services.{r.service}.labels: the luma.* labels read {got}, not {want}"
        net = (svc.get("networks") or {}).get(contract.NETWORK_KEY)
        if net != {"aliases": [contract.alias(project, r.service)]}:
            return f"services.{r.service}.networks.{contract.NETWORK_KEY}: reads {net}"
    net = (model_out.get("networks") or {}).get(contract.NETWORK_KEY) or {}
    if routes and net.get("name") != contract.ingress_network(project):
        return f"networks.{contract.NETWORK_KEY}: reads {net}"
    return None


def without_contract(model: dict, routed: set[str]) -> dict:
    """Compose's model minus what the contract writes: routed services' luma.* labels and luma network,
    the top-level luma network."""
    model = copy.deepcopy(model)
    for name in routed:
        svc = (model.get("services") or {}).get(name)
        if not isinstance(svc, dict):
            continue
        labels = svc.get("labels") or {}
        for k in [k for k in labels if k.startswith(contract.LABEL_PREFIX)]:
            del labels[k]
        if "labels" in svc and not labels:
            del svc["labels"]
        (svc.get("networks") or {}).pop(contract.NETWORK_KEY, None)
    nets = model.get("networks") or {}
    nets.pop(contract.NETWORK_KEY, None)
    if "networks" in model and not nets:
        del model["networks"]
    return model


def first_difference(a: Any, b: Any, path: str = "", names: tuple[str, str] = ("the files", "the merged file")
                     ) -> str | None:
    """The first path where ``a`` (the files) and ``b`` (the merged file) differ, with both values;
    ``names``: what ``a`` and ``b`` are called in the message."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            where = f"{path}.{k}" if path else str(k)
            if k not in b:
                return f"{where}: in {names[0]}, missing from {names[1]}"
            if k not in a:
                return f"{where}: in {names[1]}, not in {names[0]}"
            found = first_difference(a[k], b[k], where, names)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{i}]", names)
            if found:
                return found
        return None
    if a == b:
        return None
    return f"{path or 'top level'}: {_short(a)} in {names[0]}, {_short(b)} in {names[1]}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def difference(model_in: dict, model_out: dict, project: str, routes: list[contract.RoutedService],
               exact_labels: bool = True) -> str | None:
    """Where Compose's model of the rendered output is not its model of the inputs plus the contract's
    additions (None when it is exactly that).

    ``exact_labels``: compare the luma.* label values too (not when a `${VAR}` in x-luma is unknown here:
    Compose then interpolates it, render checked a placeholder)."""
    wrong = _contract_problem(model_out, project, routes, exact_labels)
    if wrong:
        return wrong
    routed = {r.service for r in routes}
    return first_difference(without_contract(model_in, routed), without_contract(model_out, routed))


#: `${VAR:-./dir}`: a variable whose default is a path (a bind mount's source, in a volume)
PATH_DEFAULT = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-[.~/]")


def binds_read_as_volumes(merged: str, variables: Mapping[str, str]) -> bool:
    """Does a merge made before interpolation read a bind mount as a named volume? Compose reads the short
    syntax ``${DATA:-./data}:/srv`` of an uninterpolated merge as a volume named ``${DATA:-./data}``, which
    is a path once interpolated: that merge cannot read back right (so its read-back need not run)."""
    from ruamel.yaml import YAML

    from .inputs import interpolate

    try:
        data = YAML(typ="safe").load(merged)
    except Exception:  # noqa: BLE001 - not readable: the read-back says why
        return False
    services = data.get("services") if isinstance(data, dict) else None
    for svc in services.values() if isinstance(services, dict) else ():
        for vol in (svc.get("volumes") or []) if isinstance(svc, dict) else ():
            source = vol.get("source") if isinstance(vol, dict) and vol.get("type") == "volume" else None
            if isinstance(source, str) and "$" in source \
                    and interpolate(source, variables, strict=False).startswith((".", "/", "~")):
                return True
    return False
