"""Certificates in the proxy's storage, per host: state and expiry for ``proxy status``. Pure.

Caddy keeps each certificate at ``/data/caddy/certificates/<issuer>/<name>/<name>.crt``; the
proxy container lists them (:meth:`ProxyContainer.certificate_files`) and this module reads the
expiry from the PEM with a minimal DER walk (no crypto dependency). A host with no certificate
is ``pending`` (Caddy is obtaining it in the background), or ``failing`` with the last ACME error
for it in the proxy's log.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


@dataclass(frozen=True)
class CertState:
    host: str
    state: str  # valid | expired | pending | failing
    not_after: str = ""  # ISO 8601, UTC
    issuer: str = ""  # the storage directory of the issuer (e.g. acme-v02.api.letsencrypt.org-directory)
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "state": self.state, "not_after": self.not_after or None,
                "issuer": self.issuer or None, "error": self.error or None}


#: Prints every certificate in Caddy's storage (the public ``.crt`` files only, never a key), each after a
#: ``==> PATH`` line: run in the proxy container (one host) or in a job mounting the edges' storage (a swarm).
LIST_SCRIPT = ("for f in $(find /data/caddy/certificates -name '*.crt' 2>/dev/null); "
               "do echo \"==> $f\"; cat \"$f\"; done; true")


def parse_listing(lines: list[str]) -> dict[str, str]:
    """:data:`LIST_SCRIPT`'s output -> path -> PEM."""
    files: dict[str, str] = {}
    cur = None
    for line in lines:
        if line.startswith("==> "):
            cur = line[4:].strip()
            files[cur] = ""
        elif cur is not None:
            files[cur] += line + "\n"
    return files


def _tlv(data: bytes, i: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at i."""
    tag = data[i]
    n = data[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[i:i + k], "big")
        i += k
    return tag, i, i + n


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    i = start
    while i < end:
        t, s, e = _tlv(data, i)
        out.append((t, s, e))
        i = e
    return out


def _time(tag: int, raw: bytes) -> datetime:
    text = raw.decode()
    fmt = "%y%m%d%H%M%SZ" if tag == 0x17 else "%Y%m%d%H%M%SZ"
    return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)


def not_after(pem: str) -> datetime | None:
    """The expiry of the first certificate in a PEM text, None when it cannot be read."""
    m = re.search(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", pem, re.S)
    if not m:
        return None
    try:
        der = base64.b64decode("".join(m.group(1).split()))
        _, s, e = _tlv(der, 0)  # Certificate
        _, ts, te = _children(der, s, e)[0]  # TBSCertificate
        fields = _children(der, ts, te)
        idx = 1 if fields[0][0] == 0xA0 else 0  # [0] version is optional
        validity = fields[idx + 3]
        times = _children(der, validity[1], validity[2])
        t, vs, ve = times[1]
        return _time(t, der[vs:ve])
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def states(hosts: list[str], files: dict[str, str], log_text: str, now: datetime | None = None) -> list[CertState]:
    """Each host's certificate state from the storage files (path -> PEM) and the proxy's recent log."""
    now = now or datetime.now(timezone.utc)
    best: dict[str, tuple[datetime, str]] = {}
    for path, pem in files.items():
        parts = path.strip("/").split("/")
        if len(parts) < 3:
            continue
        name, issuer = parts[-2], parts[-3]
        exp = not_after(pem)
        if exp is not None and (name not in best or exp > best[name][0]):
            best[name] = (exp, issuer)
    errors = _errors(log_text)
    out = []
    for h in sorted(set(hosts)):
        key = h.lower()
        if key in best:
            exp, issuer = best[key]
            out.append(CertState(h, "valid" if exp > now else "expired",
                                 exp.strftime("%Y-%m-%dT%H:%M:%SZ"), issuer))
        elif key in errors:
            out.append(CertState(h, "failing", error=errors[key]))
        else:
            out.append(CertState(h, "pending"))
    return out


def _errors(log_text: str) -> dict[str, str]:
    """identifier -> the last error Caddy logged while obtaining its certificate (JSON log lines)."""
    out: dict[str, str] = {}
    for line in log_text.splitlines():
        if '"error"' not in line or '"identifier"' not in line:
            continue
        try:
            entry = json.loads(line[line.index("{"):])
        except ValueError:
            continue
        ident = str(entry.get("identifier", "")).lower()
        if ident and entry.get("level") in ("error", "warn"):
            out[ident] = f"{entry.get('msg', '')}: {entry.get('error', '')}".strip(": ")
    return out
