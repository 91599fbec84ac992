"""The swarm output of render (a stack file), and the swarm checks. Pure: no Docker.

It post-processes render's output (the single-host contract) with the same splicing editor,
so everything render keeps byte for byte is kept here too. What changes for
``docker stack deploy -c - P``:

* the pinned top-level ``name:`` line goes (the stack's name is the ``P`` argument, and the stack
  loader rejects ``name``);
* the ingress network ``luma`` gets ``driver: overlay`` and ``attachable: true`` (the stack names it
  ``P_luma``, as Compose does; attachable so the proxy, a separate service, may join it);
* each routed service gets the ``luma.*`` labels as service labels too (``deploy.labels``), which
  a manager shows for the whole cluster (container labels are kept: they cost nothing).

``problems()`` reports the keys Swarm ignores (warnings) or rejects (errors) for ``check --swarm``.
:func:`render` is the whole swarm output of one render result; :func:`intended` says, as data, what the
stack file is meant to be (the input as ``docker stack config`` reads it, plus the additions above), for
the read-back (``docker stack config`` runs in :mod:`..engine.stack_cli`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ruamel.yaml.nodes import MappingNode

from .. import contract
from ..errors import Problem
from .source import Source, is_map, is_null, is_seq, own_get, parse
from .splice import Editor, key_col, scalar

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import Result

#: Service keys `docker stack deploy` ignores, with what to use instead.
IGNORED_SERVICE_KEYS = {
    "build": "build and push the image first; stack deploy only pulls `image`",
    "container_name": "Swarm names tasks itself (P_S.N.ID); drop it",
    "restart": "use deploy.restart_policy",
    "links": "use networks (the service name resolves on shared networks)",
    "network_mode": "attach the service to networks instead",
    "devices": "not supported by Swarm services",
    "cgroup_parent": "not supported by Swarm services",
    "security_opt": "not supported by Swarm services",
    "userns_mode": "not supported by Swarm services",
    "external_links": "not supported by Swarm services",
    "cpu_shares": "use deploy.resources",
    "mem_limit": "use deploy.resources.limits.memory",
    "cpus": "use deploy.resources.limits.cpus",
}


def is_warning(p: Problem) -> bool:
    return p.rule == WARNING_RULE


WARNING_RULE = "swarm-ignored"


def problems(src: Source) -> list[Problem]:
    """What Swarm ignores (rule ``swarm-ignored``: a warning) or rejects (an error) in the input file."""
    out: list[Problem] = []
    _, services = own_get(src.root, "services")
    if not is_map(services):
        return out
    for k, body in services.value:
        name = k.value
        if not is_map(body):
            continue
        for key, hint in IGNORED_SERVICE_KEYS.items():
            kn, _ = own_get(body, key)
            if kn is not None:
                out.append(src.problem(kn, f"service '{name}': `{key}` is ignored by docker stack deploy", hint,
                                       WARNING_RULE))
        _, xl = own_get(body, contract.EXTENSION_KEY)
        rk, _ = own_get(xl, "rollout") if is_map(xl) else (None, None)
        if rk is not None:
            out.append(src.problem(rk, f"service '{name}': x-luma `rollout` is not read on a swarm",
                                   "write Compose's own `deploy.update_config.order` (start-first or stop-first): "
                                   "Swarm rolls the service that way", WARNING_RULE))
        hk, _ = own_get(xl, "health_interval") if is_map(xl) else (None, None)
        if hk is not None:
            out.append(src.problem(hk, f"service '{name}': x-luma `health_interval` is not read on a swarm",
                                   "write Compose's own `healthcheck:`: Swarm keeps a task out of the service's "
                                   "DNS until it passes, and the gateways dial only those", WARNING_RULE))
        kn, dep = own_get(body, "depends_on")
        if kn is not None:
            if is_map(dep):
                out.append(src.problem(kn, f"service '{name}': `depends_on` with conditions is rejected by "
                                       "docker stack deploy (\"must be a list\")",
                                       "Swarm starts services in any order: write `depends_on: [a, b]` (ignored, "
                                       "documentation only) and make the app retry until its dependencies answer",
                                       "swarm-rejected"))
            else:
                out.append(src.problem(kn, f"service '{name}': `depends_on` is ignored by docker stack deploy "
                                       "(services start in any order)", "make the app retry until its dependencies "
                                       "answer", WARNING_RULE))
    return out


def _has_luma(labels: Any) -> bool:
    if is_map(labels):
        return any(str(k.value).startswith(contract.LABEL_PREFIX) for k, _ in labels.value)
    if is_seq(labels):
        return any(str(getattr(i, "value", "")).startswith(contract.LABEL_PREFIX) for i in labels.value)
    return False


class StackRefused(Exception):
    def __init__(self, problem: Problem):
        super().__init__(problem.message)
        self.problem = problem


def to_stack(name: str, rendered: str, project: str, routes: list[contract.RoutedService]) -> str:
    """Render's output -> a file for ``docker stack deploy -c - PROJECT``. Raises StackRefused."""
    src, errs = parse(name, rendered)
    if errs:  # pragma: no cover - render's output always parses
        raise StackRefused(errs[0])
    root = src.root
    if not is_map(root) or root.flow_style:
        raise StackRefused(src.problem(root, "--swarm needs a block-style top-level mapping",
                                       "write the file in block style", "swarm-style"))
    ed = Editor(src)
    _, services = own_get(root, "services")
    step = max(2, key_col(services) - key_col(root)) if is_map(services) and not services.flow_style else 2
    # 1. no `name:`
    k, v = own_get(root, "name")
    if k is not None:
        ed.replace(src.offset(k.start_mark.line, 0), ed.line_after(ed.node_end(v, ed.off(k.end_mark))), "")
    # 2. the ingress network is an attachable overlay
    if routes:
        _, nets = own_get(root, "networks")
        _, luma = own_get(nets, "luma") if is_map(nets) else (None, None)
        if not is_map(luma) or luma.flow_style:
            raise StackRefused(src.problem(luma if luma is not None else root,
                                           "--swarm needs the `luma` network as a block mapping",
                                           "write networks.luma in block style", "swarm-style"))
        add = []
        dk, dv = own_get(luma, "driver")
        if dk is None:
            add.append("driver: overlay")
        elif getattr(dv, "value", None) != "overlay":
            raise StackRefused(src.problem(dv, "the `luma` network must use the overlay driver on a swarm",
                                           "remove its driver (render sets overlay)", "swarm-network"))
        ak, av = own_get(luma, "attachable")
        if ak is None:
            add.append("attachable: true")
        elif getattr(av, "value", None) not in ("true", "True", True):
            raise StackRefused(src.problem(av, "the `luma` network must be attachable on a swarm",
                                           "remove `attachable` (render sets it)", "swarm-network"))
        if add:
            col = key_col(luma)
            ed.insert_lines(ed.after_entries(luma, luma.value[0][0]), [" " * col + a for a in add])
    # 3. deploy.labels
    for r in routes:
        _, body = own_get(services, r.service)
        _deploy_labels(src, ed, body, r.labels(project), step)
    return ed.apply()


#: What a routed service gets under ``deploy`` unless it says otherwise: Swarm's own health-gated
#: rolling update (a new task must be healthy before an old one stops; an unhealthy one rolls back)
#: and DNS round-robin, so the proxy sees every task (and no IPVS is needed).
DEPLOY_DEFAULTS = (
    ("endpoint_mode", ["endpoint_mode: dnsrr"]),
    ("update_config", ["update_config:", "  order: start-first", "  failure_action: rollback",
                       "  monitor: 10s"]),
    ("rollback_config", ["rollback_config:", "  order: start-first"]),
)


def _defaults(deploy: MappingNode | None, body: MappingNode, step: int) -> list[str]:
    lines: list[str] = []
    for key, text in DEPLOY_DEFAULTS:
        if deploy is not None and own_get(deploy, key)[0] is not None:
            continue
        if key == "endpoint_mode" and own_get(body, "ports")[0] is not None:
            continue  # published ingress ports need a VIP: keep Swarm's default
        lines += [t.replace("  ", " " * step, 1) if t.startswith("  ") else t for t in text]
    return lines


def _deploy_labels(src: Source, ed: Editor, body: MappingNode, want: dict[str, str], step: int) -> None:
    lines = [f"{scalar(k)}: {scalar(v)}" for k, v in want.items()]
    col = key_col(body)
    dk, deploy = own_get(body, "deploy")
    if dk is None:
        ed.insert_lines(ed.after_entries(body, body.value[0][0]),
                        [" " * col + "deploy:"] + [" " * (col + step) + d for d in _defaults(None, body, step)]
                        + [" " * (col + step) + "labels:"]
                        + [" " * (col + 2 * step) + line for line in lines])
        return
    if is_null(deploy) or not is_map(deploy) or deploy.flow_style:
        raise StackRefused(src.problem(deploy if deploy is not None else dk,
                                       "--swarm needs `deploy` as a block mapping to add the luma labels",
                                       "write deploy in block style", "swarm-style"))
    lk, labels = own_get(deploy, "labels")
    dcol = key_col(deploy)
    extra = _defaults(deploy, body, step)
    if extra:
        ed.insert_lines(ed.after_entries(deploy, deploy.value[0][0]), [" " * dcol + d for d in extra])
    if lk is None:
        ed.insert_lines(ed.after_entries(deploy, deploy.value[0][0]),
                        [" " * dcol + "labels:"] + [" " * (dcol + step) + line for line in lines])
        return
    if _has_luma(labels):
        if is_map(labels) and {str(k.value): str(v.value) for k, v in labels.value
                               if str(k.value).startswith(contract.LABEL_PREFIX)} == want:
            return  # rendered before: idempotent
        raise StackRefused(src.problem(labels, "luma.* labels already in deploy.labels",
                                       "remove them: render writes them from x-luma", "swarm-labels"))
    if is_map(labels) and not labels.flow_style and labels.value:
        ed.insert_lines(ed.after_entries(labels, labels.value[0][0]),
                        [" " * key_col(labels) + line for line in lines])
    elif is_seq(labels) and not labels.flow_style and labels.value:
        icol = labels.value[0].start_mark.column - 2
        ed.insert_lines(ed.line_after(ed.node_end(labels, ed.off(labels.start_mark))),
                        [" " * icol + "- " + scalar(f"{k}={v}") for k, v in want.items()])
    else:
        raise StackRefused(src.problem(labels, "--swarm needs deploy.labels as a non-empty block collection",
                                       "write deploy.labels in block style", "swarm-style"))


#: DEPLOY_DEFAULTS as ``docker stack config`` prints them.
DEPLOY_DEFAULT_DATA = {"endpoint_mode": "dnsrr",
                       "update_config": {"order": "start-first", "failure_action": "rollback", "monitor": "10s"},
                       "rollback_config": {"order": "start-first"}}


@dataclass
class StackRender:
    """The swarm output of one render: the stack file (None when there are problems), the problems
    (render's and Swarm's errors), the warnings (what Swarm ignores)."""

    text: str | None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    #: render's output (the single-host file) the stack file was made from
    single_host: str | None = None


def render(result: Result) -> StackRender:
    """The stack file of a render result, with Swarm's checks."""
    src, errs = parse(result.source, result.input_text)
    swarm_problems = [] if errs else problems(src)
    out = StackRender(None, list(result.problems) + [p for p in swarm_problems if not is_warning(p)],
                      [p for p in swarm_problems if is_warning(p)], result.text)
    if not out.problems:
        try:
            out.text = to_stack(result.source, result.text, result.project, result.routes)
        except StackRefused as e:
            out.problems.append(e.problem)
    return out


def without_name(name: str, rendered: str) -> str:
    """Render's output without its top-level ``name:`` (the stack loader rejects it): what the stack
    file is made from, as ``docker stack config`` can read it."""
    src, errs = parse(name, rendered)
    k, v = own_get(src.root, "name") if not errs and is_map(src.root) else (None, None)
    if k is None:
        return rendered
    ed = Editor(src)
    ed.replace(src.offset(k.start_mark.line, 0), ed.line_after(ed.node_end(v, ed.off(k.end_mark))), "")
    return ed.apply()


def intended(model_in: dict, project: str, routes: list[contract.RoutedService]) -> dict:
    """What the stack file is meant to read as: ``model_in`` (docker stack config's model of render's
    output without ``name``) plus the overlay, attachable ``luma`` network and, on each routed service,
    the deploy defaults it does not set and the luma.* labels as deploy.labels."""
    model = copy.deepcopy(model_in)
    if routes:
        net = ((model.setdefault("networks", {}) or {}).get(contract.NETWORK_KEY)) or {}
        model["networks"][contract.NETWORK_KEY] = {**net, "driver": "overlay", "attachable": True}
    for r in routes:
        svc = (model.get("services") or {}).get(r.service)
        if not isinstance(svc, dict):
            continue
        deploy = svc.setdefault("deploy", {})
        for key, value in DEPLOY_DEFAULT_DATA.items():
            if key not in deploy and not (key == "endpoint_mode" and svc.get("ports")):
                deploy[key] = copy.deepcopy(value)
        deploy["labels"] = {**(deploy.get("labels") or {}), **r.labels(project)}
    return model
