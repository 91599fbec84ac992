"""Releases: what every successful ``deploy`` (and ``rollback``) leaves on the engine.

One docker volume per release, ``luma-release-<project>-<n>``, holding nothing: its labels are the
record (number, time, who, from where, git commit, each service's image id and reference, the routes
and the file as ``docker compose config`` resolved it, gzip+base64). Any client of the engine reads
them back; no image is needed, they survive engine restarts, and ``docker volume prune`` (anonymous
volumes only since Engine 23) leaves them alone. Each service's image is also tagged
``luma-release/<project>:<n>-<service>``, so it stays on the engine (an image prune keeps tagged
images) for as long as the release is kept. The last N are kept (deploy --keep-releases).
"""

from __future__ import annotations

import base64
import getpass
import gzip
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import contract as k
from ..contract import RoutedService
from ..engine.git import git as _git
from ..errors import LumaError, UsageError
from ..records import COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL, VolumeRecord

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.protocols import Engine

DEFAULT_KEEP = 10
KEEP_ENV = "LUMA_KEEP_RELEASES"
_FILE_PREFIX = "gz64:"
#: A component of an image repository name (distribution/reference).
_REPO_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-*)[a-z0-9]+)*$")


@dataclass(frozen=True)
class ReleaseImage:
    id: str  # "sha256:...", "" when the engine had no image for the service
    ref: str  # the image as the file named it (e.g. nginx:1.27, or compose's shop-web for a build)
    pin: str  # luma-release/<project>:<n>-<service>


@dataclass(frozen=True)
class Origin:
    by: str  # user@host
    source: str  # the git remote of the project directory, else host:directory
    commit: str  # git commit of the project directory ("" outside git; "-dirty" when changed)


@dataclass(frozen=True)
class Release:
    project: str
    number: int
    time: str  # RFC 3339, UTC
    origin: Origin
    images: dict[str, ReleaseImage] = field(default_factory=dict)
    routes: tuple[RoutedService, ...] = ()
    config: str = ""  # the file as `docker compose config --format json` resolved it
    note: str = ""  # "rollback to 3"

    @property
    def volume(self) -> str:
        return k.release_volume(self.project, self.number)

    def to_json(self) -> dict:
        return {"project": self.project, "number": self.number, "time": self.time, "by": self.origin.by,
                "source": self.origin.source, "commit": self.origin.commit, "note": self.note,
                "images": {s: {"id": i.id, "ref": i.ref, "pin": i.pin} for s, i in sorted(self.images.items())},
                "hosts": sorted({h for r in self.routes for h in r.hosts}), "file": self.config}


# ------------------------------------------------------------------ names and encoding


def pin(project: str, number: int, service: str) -> str:
    """The tag that keeps a release's image of one service: luma-release/<project>:<n>-<service>."""
    repo = project
    if not _REPO_COMPONENT.match(project):  # e.g. ends in "-" or "_": a valid, distinct repository
        repo = re.sub(r"[^a-z0-9]+", "-", project).strip("-") + "-" + hashlib.sha256(project.encode()).hexdigest()[:8]
    return f"{k.RELEASE_REPOSITORY}/{repo}:{number}-{service}"[:255]


def encode_file(text: str) -> str:
    return _FILE_PREFIX + base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode()


def decode_file(value: str) -> str:
    if value.startswith(_FILE_PREFIX):
        return gzip.decompress(base64.b64decode(value[len(_FILE_PREFIX):])).decode()
    return value


def to_labels(r: Release) -> dict[str, str]:
    return {
        k.RELEASE_PROJECT_LABEL: r.project, k.RELEASE_NUMBER_LABEL: str(r.number), k.RELEASE_TIME_LABEL: r.time,
        k.RELEASE_BY_LABEL: r.origin.by, k.RELEASE_SOURCE_LABEL: r.origin.source,
        k.RELEASE_COMMIT_LABEL: r.origin.commit, k.RELEASE_NOTE_LABEL: r.note,
        k.RELEASE_IMAGES_LABEL: json.dumps({s: [i.id, i.ref, i.pin] for s, i in sorted(r.images.items())}),
        k.RELEASE_ROUTES_LABEL: json.dumps([x._asdict() for x in r.routes]),
        k.RELEASE_FILE_LABEL: encode_file(r.config),
    }


def _routed(x: dict) -> RoutedService:
    """A route of a release's label: every field of RoutedService, lists back to tuples."""
    def tup(v):
        return tuple(tup(i) for i in v) if isinstance(v, list) else v
    fields = {f: tup(x[f]) for f in RoutedService._fields if f in x}
    return RoutedService(**{**fields, "port": int(fields["port"])})


def from_volume(v: VolumeRecord) -> Release | None:
    """The release a volume records; None for one whose labels are not a release's (never an error:
    any client can make volumes)."""
    lb = v.labels
    try:
        number = int(lb[k.RELEASE_NUMBER_LABEL])
        project = lb[k.RELEASE_PROJECT_LABEL]
        if v.name != k.release_volume(project, number):
            return None
        images = {s: ReleaseImage(*x) for s, x in json.loads(lb.get(k.RELEASE_IMAGES_LABEL) or "{}").items()}
        routes = tuple(_routed(x) for x in json.loads(lb.get(k.RELEASE_ROUTES_LABEL) or "[]"))
        config = decode_file(lb.get(k.RELEASE_FILE_LABEL, ""))
    except (KeyError, ValueError, TypeError, OSError):
        return None
    origin = Origin(lb.get(k.RELEASE_BY_LABEL, ""), lb.get(k.RELEASE_SOURCE_LABEL, ""),
                    lb.get(k.RELEASE_COMMIT_LABEL, ""))
    return Release(project, number, lb.get(k.RELEASE_TIME_LABEL, ""), origin, images, routes, config,
                   lb.get(k.RELEASE_NOTE_LABEL, ""))


def keep_setting(option: int | None) -> int:
    """--keep-releases N, else $LUMA_KEEP_RELEASES, else 10."""
    if option is not None:
        return option
    raw = os.environ.get(KEEP_ENV, "").strip()
    if not raw:
        return DEFAULT_KEEP
    if not raw.isdigit() or int(raw) < 1:
        raise UsageError(f"${KEEP_ENV} is {raw!r}: not a whole number of at least 1",
                         f"set {KEEP_ENV} to how many releases to keep per project (default {DEFAULT_KEEP})")
    return int(raw)


# ------------------------------------------------------------------ reading


def releases(engine: "Engine", project: str | None = None) -> list[Release]:
    """The releases on the engine (of one project), oldest first."""
    want = [f"{k.RELEASE_PROJECT_LABEL}={project}" if project else k.RELEASE_PROJECT_LABEL]
    found = [r for r in map(from_volume, engine.volume_records(want)) if r is not None]
    return sorted(found, key=lambda r: (r.project, r.number))


# ------------------------------------------------------------------ writing


def origin(directory: str) -> Origin:
    """Who deploys, from where: user@host, the git remote (else host:directory) and commit."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    host = socket.gethostname()
    remote = _git(directory, "remote", "get-url", "origin")
    commit = _git(directory, "rev-parse", "HEAD")
    if commit and _git(directory, "status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    return Origin(f"{user}@{host}", remote or f"{host}:{directory}", commit)


def images_of(engine: "Engine", project: str, cfg: dict,
              refs: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """Each service's (image id, reference) as deployed: from its running containers, else the engine's
    image of the reference the file names. refs: references to record instead (a rollback's originals)."""
    out: dict[str, tuple[str, str]] = {}
    running = [c for c in engine.containers([f"{COMPOSE_PROJECT_LABEL}={project}"]) if not c.draining]
    for s, svc in (cfg.get("services") or {}).items():
        mine = [c for c in running if c.labels.get(COMPOSE_SERVICE_LABEL) == s]
        ref = (svc or {}).get("image") or (mine[0].image_ref if mine else "") or f"{project}-{s}"
        iid = mine[0].image if mine and mine[0].image else engine.image_id(ref)
        out[s] = (iid, (refs or {}).get(s, ref))
    return out


def record(engine: "Engine", project: str, cfg: dict, routes: Sequence[RoutedService], who: Origin,
           keep: int = DEFAULT_KEEP, note: str = "",
           refs: dict[str, str] | None = None) -> tuple[Release, list[str], bool]:
    """Record the release just deployed (the caller holds the project's deploy lock), pin its images,
    forget the releases past the last ``keep``. Returns the release, warnings and whether it is new.
    A deploy that changed nothing (the same file and image ids as the newest release) records
    nothing: that one is returned."""
    warnings: list[str] = []
    found = releases(engine, project)
    number = max((r.number for r in found), default=0) + 1
    deployed = images_of(engine, project, cfg, refs)
    config = json.dumps(cfg, sort_keys=True)
    if found and found[-1].config == config and {s: i.id for s, i in found[-1].images.items()} == \
            {s: iid for s, (iid, _) in deployed.items()} and found[-1].note == note:
        return found[-1], [], False  # a deploy that changed nothing: the newest release is still what runs
    images = {}
    for s, (iid, ref) in deployed.items():
        p = pin(project, number, s)
        if iid:
            engine.tag_image(iid, *p.rsplit(":", 1))
        else:
            warnings.append(f"release {number}: service {s} has no image on the engine ({ref}); a rollback to "
                            "this release uses the reference as it is then")
        images[s] = ReleaseImage(iid, ref, p if iid else "")
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rel = Release(project, number, when, who, images, tuple(routes), config, note)
    engine.create_volume_checked(rel.volume, to_labels(rel))
    warnings += prune(engine, project, keep)
    return rel, warnings, True


def prune(engine: "Engine", project: str, keep: int) -> list[str]:
    """Forget all but the last ``keep`` releases of a project (keep 0: all of them): their volumes and
    their pin tags (an image goes with its last tag, unless a container still uses it)."""
    found = releases(engine, project)
    gone = found[: max(0, len(found) - keep)]
    warnings = []
    for r in gone:
        for i in r.images.values():
            if i.pin and engine.image_id(i.pin):
                engine.untag_image(i.pin)
        try:
            engine.remove_volume(r.volume)
        except LumaError as e:
            warnings.append(f"could not remove release {r.number} ({r.volume}): {e.message}")
    return warnings


def recorder(deployer, who: Origin, keep: int, note: str = "", refs: dict[str, str] | None = None):
    """The ``Deployer.after`` hook that records the release; a failure to record is a warning (the
    deploy itself succeeded)."""
    from .progress import Progress

    def after(cfg: dict) -> None:
        with deployer.progress.step("Record the release") as n:
            try:
                rel, warnings, new = record(deployer.engine, deployer.project, cfg, list(deployer.routed.values()), who,
                                       keep, note, refs)
            except LumaError as e:
                n.append(Progress.FAILED)
                deployer.warnings.append(f"the release was not recorded: {e.message}")
                return
            if new:
                n.append(f"{rel.number} (images pinned as {pin(rel.project, rel.number, '*')})")
            else:
                n.append(f"{rel.number}: unchanged, not recorded again")
            deployer.warnings.extend(warnings)

    return after


def forget(engine: "Engine", project: str) -> int:
    """Remove every release of a project (``down``); how many there were."""
    n = len(releases(engine, project))
    prune(engine, project, 0)
    return n
