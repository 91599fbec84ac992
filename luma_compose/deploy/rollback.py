"""``rollback``: which release, and the file that redeploys it with its images by their pin tags.

Pure decisions on release records plus read-only engine lookups (image ids); nothing here changes the
engine except :func:`restore_pins` (a tag put back on an image still there by id), which the caller
runs only once every image was found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import LumaError
from .releases import Release

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.protocols import Engine


@dataclass(frozen=True)
class Plan:
    release: Release
    text: str  # the compose file to deploy (JSON, which is YAML)
    retag: tuple[tuple[str, str], ...]  # (image id, pin) to put back before deploying
    warnings: tuple[str, ...] = ()


def choose(found: list[Release], project: str, wanted: int | None) -> Release:
    """The release to go back to: ``wanted``, else the one before the release now deployed (the one
    before what the newest release, itself maybe a rollback, brought back)."""
    if not found:
        raise LumaError(f"project {project} has no releases on this engine",
                        "releases are recorded by `luma-compose deploy`; see `luma-compose ls` for the projects here")
    by_number = {r.number: r for r in found}
    if wanted is not None:
        if wanted not in by_number:
            kept = ", ".join(str(n) for n in sorted(by_number))
            raise LumaError(f"project {project} has no release {wanted} (kept: {kept})",
                            "see `luma-compose releases -p " + project + "`")
        return by_number[wanted]
    current = found[-1]
    base = rolled_back_to(current) or current.number
    older = [r for r in found if r.number < base]
    if not older:
        raise LumaError(f"project {project}: release {current.number} is the oldest one kept; there is nothing "
                        "before it to roll back to",
                        "give a release number: `luma-compose releases -p " + project + "`")
    return older[-1]


def rolled_back_to(r: Release) -> int | None:
    """The release a rollback release brought back (its note says), else None."""
    prefix = "rollback to "
    if r.note.startswith(prefix) and r.note[len(prefix):].isdigit():
        return int(r.note[len(prefix):])
    return None


def plan(engine: "Engine", r: Release) -> Plan:
    """The file that redeploys ``r``: every service's image is its pin tag, never pulled or built.
    Refuses (LumaError, nothing changed) when an image of the release is gone from the engine."""
    try:
        cfg = json.loads(r.config)
    except ValueError:
        raise LumaError(f"release {r.number} of {r.project}: its recorded file cannot be read",
                        "roll back to another release (luma-compose releases)") from None
    missing, retag, warnings = [], [], []
    for s, svc in (cfg.get("services") or {}).items():
        img = r.images.get(s)
        if img is None or not img.id:
            warnings.append(f"service {s}: release {r.number} recorded no image id; deploying {svc.get('image')!r} "
                            "as it is now")
            continue
        at_pin = engine.image_id(img.pin) if img.pin else ""
        if at_pin and at_pin != img.id:
            warnings.append(f"service {s}: {img.pin} now tags {at_pin[:19]}, not the recorded {img.id[:19]}; "
                            "deploying what the tag names")
        if not at_pin:
            if not engine.image_id(img.id):
                missing.append((s, img))
                continue
            retag.append((img.id, img.pin))
        svc["image"] = img.pin
        svc.pop("build", None)
        svc["pull_policy"] = "never"
    if missing:
        raise LumaError(_missing_message(r, missing), _missing_hint(missing))
    return Plan(r, json.dumps(cfg, indent=1, sort_keys=True) + "\n", tuple(retag), tuple(warnings))


def _missing_message(r: Release, missing) -> str:
    lines = [f"  service {s}: image {i.id} (was {i.ref}, tagged {i.pin})" for s, i in missing]
    return (f"refusing to roll {r.project} back to release {r.number}, nothing was changed: "
            f"{'an image' if len(missing) == 1 else 'images'} of that release "
            f"{'is' if len(missing) == 1 else 'are'} no longer on the engine:\n" + "\n".join(lines))


def _missing_hint(missing) -> str:
    s, i = missing[0]
    return (f"get the image back (`docker pull {i.ref}`, or rebuild it from the release's commit), check it is the "
            f"one you want (`docker image inspect -f '{{{{.Id}}}}' {i.ref}`), tag it as the release's image "
            f"(`docker tag {i.ref} {i.pin}`), and run the rollback again")


def restore_pins(engine: "Engine", p: Plan) -> None:
    for iid, ref in p.retag:
        engine.tag_image(iid, *ref.rsplit(":", 1))
