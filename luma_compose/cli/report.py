"""What the commands print, without click: render and check must start fast.

Colour only when the stream is a terminal and NO_COLOR is not set.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Iterable

from ..errors import LumaError, Problem

_CODES = {"red": "31", "cyan": "36", "bold": "1"}


def _stream(err: bool) -> IO[str]:
    return sys.stderr if err else sys.stdout


def colour(stream: IO[str]) -> bool:
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()


def style(text: str, code: str, stream: IO[str]) -> str:
    return f"\x1b[{_CODES[code]}m{text}\x1b[0m" if colour(stream) else text


def echo(text: str = "", err: bool = False, nl: bool = True) -> None:
    stream = _stream(err)
    try:
        stream.write(text + ("\n" if nl else ""))
        stream.flush()
    except BrokenPipeError:  # the reader went away (`... | head`, `... | true`)
        try:  # nothing more can reach it; keep the interpreter's last flush from failing again
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (OSError, ValueError):
            pass
        if err:
            return
        raise LumaError("the output pipe was closed before everything was written",
                        "the command reading the output stopped early; run it again with a reader "
                        "that reads everything, or use -o FILE") from None


def print_problems(problems: Iterable[Problem], err: bool = True, kind: str = "error") -> None:
    s = _stream(err)
    for p in problems:
        echo(f"{style(p.location(), 'bold', s)}: {style(kind, 'red', s)}: {p.message}", err)
        if p.hint:
            echo(f"  {style('hint', 'cyan', s)}: {p.hint}", err)


def print_error(e: LumaError) -> None:
    echo(f"error: {e.message}", err=True)
    if e.hint:
        echo(f"  hint: {e.hint}", err=True)


def exit_code_for(e: BaseException) -> int:
    """What the user sees of an exception that ends a command, and its exit code: a LumaError as
    it says, Ctrl-C as 130, anything else as a one-line internal error (70), never a traceback
    (LUMA_DEBUG=1 re-raises it)."""
    if isinstance(e, BrokenPipeError):  # written with something else than echo (click's own output)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        e = LumaError("the output pipe was closed before everything was written",
                      "the command reading the output stopped early; run it again with a reader that reads everything")
    if isinstance(e, LumaError):
        print_error(e)
        return e.exit_code
    if isinstance(e, KeyboardInterrupt):
        return 130
    if os.environ.get("LUMA_DEBUG"):
        raise e
    print_bug(e)
    return 70


def print_bug(e: BaseException) -> None:
    echo(f"internal error: {type(e).__name__}: {e}", err=True)
    echo("  hint: this is a bug in luma-compose; rerun with LUMA_DEBUG=1 for details and report it", err=True)


def unified_diff(a: str, b: str, name_a: str, name_b: str) -> str:
    import difflib

    lines = difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True), name_a, name_b)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# ----------------------------------------------------------------------------- reporters
#
# Every command that has a --format prints through one reporter, picked by name (as
# check-jsonschema picks its reporter): "text" for people, "json" for tools (version 1
# shapes, published under schemas/). Problems that are not the command's output
# (conflicts, ignored containers) go to stderr in both.


class TextReporter:
    name = "text"

    def check(self, results: list) -> None:
        problems = [p for r in results for p in r.problems]
        print_problems(problems, err=False)
        print_problems([w for r in results for w in r.warnings], err=False, kind="warning")
        for r in results:
            if r.ok:
                echo(f"{r.source}: ok")
        if problems:
            n = len(problems)
            echo(f"{n} problem{'s' if n > 1 else ''} found", err=True)

    def routes(self, table, served=None) -> None:
        if served is None:
            echo("(the proxy is not running: this is what the labels say; nothing is served)")
        echo(route_table_text(table, served))

    def status(self, st) -> None:
        echo(f"engine: {st.endpoint}")
        echo(f"proxy {st.name}: {st.state}, image {st.image}, tls {st.tls}, "
             f"ports {', '.join(f'{k} -> {v}' for k, v in sorted(st.ports.items())) or 'none'}")
        echo(f"config: {'in sync with the labels' if st.in_sync else 'OUT OF SYNC (run: luma-compose proxy sync)'}")
        echo(route_table_text(st.table))
        if st.tls != "off" and st.certificates:
            echo("certificates:")
            for cs in st.certificates:
                detail = {"valid": f"valid until {cs.not_after} ({cs.issuer})",
                          "expired": f"EXPIRED {cs.not_after} ({cs.issuer})",
                          "pending": "none yet (being obtained; see the proxy's log)",
                          "failing": f"none: {cs.error}"}[cs.state]
                echo(f"  {cs.host}: {detail}")

    def sync(self, res, quiet: bool = False) -> None:
        """What one sync did: network changes and warnings on stderr, the summary on stdout."""
        for n in res.connected:
            echo(f"proxy: attached to {n}", err=True)
        for n in res.disconnected:
            echo(f"proxy: detached from {n}", err=True)
        for n in res.removed_networks:
            echo(f"proxy: removed network {n} (its project is gone)", err=True)
        for w in res.warnings:
            echo(f"warning: {w}", err=True)
        table_problems(res.table)
        if not quiet:
            echo(f"{len(res.table.routes)} route(s), {'config loaded' if res.changed else 'no change'}")


class JsonReporter(TextReporter):
    name = "json"

    @staticmethod
    def _dump(doc: dict) -> None:
        import json

        echo(json.dumps(doc, indent=2))

    def check(self, results: list) -> None:
        problems = [p for r in results for p in r.problems]
        self._dump({
            "version": 1, "ok": not problems, "problem_count": len(problems),
            "results": [{"source": r.source, "project": r.project, "ok": r.ok,
                         "problems": [p.to_json() for p in r.problems],
                         "warnings": [p.to_json() for p in r.warnings]} for r in results],
        })

    def routes(self, table, served=None) -> None:
        out = {"version": 1, **table.to_json()}
        for r in out["routes"]:  # what Caddy's loaded config dials for the route now
            r["served_upstreams"] = (served or {}).get(f"{r['project']}/{r['service']}")
        self._dump(out)
        table_problems(table)

    def status(self, st) -> None:
        self._dump(st.to_json())
        table_problems(st.table)


REPORTERS = {r.name: r for r in (TextReporter, JsonReporter)}


def reporter(fmt: str) -> TextReporter:
    return REPORTERS[fmt]()


def table_problems(table) -> None:
    """A route table's conflicts and ignored containers, on stderr."""
    for c in table.conflicts:
        echo(f"conflict: {c.message}", err=True)
    for p in table.problems:
        echo(f"ignored: {p}", err=True)


def _health(h: str) -> str:
    return "no Docker health check" if h == "none" else f"docker health {h}"


def route_table_text(table, served: dict | None = None) -> str:
    """The table the labels give; with ``served`` (route id -> dials in Caddy's loaded config),
    each route whose served upstreams differ also says what Caddy serves now."""
    rows = [("HOST", "TARGET", "PROJECT", "SERVICE", "CONTAINERS")]
    notes: list[str] = []
    for r in table.routes:
        members = ", ".join(
            f"{m.name} ({_health(m.health)}, {'in pool' if m.in_pool else m.reason})" for m in r.members
        ) or ("- (no container; the project is up, the host is held)" if r.held else "-")
        if r.withheld:
            members += f" [no traffic: {r.withheld}]"
        if r.maintenance:
            from ..routing.maintenance import describe

            members += f" [{describe(r.maintenance)}]"
        if served is not None:
            from ..proxy.caddy_config import dial_address

            now = served.get(r.key)
            want = [dial_address(u) for u in r.upstreams]
            if now is None:
                notes.append(f"not served yet: {r.key} (run: luma-compose proxy sync)")
            elif sorted(now) != sorted(want):
                notes.append(f"served now: {r.key} -> {', '.join(now) or '503'} "
                             f"(labels say {', '.join(want) or '503'}; run: luma-compose proxy sync)")
        for h in r.hosts:
            rows += [(h + p, r.target, r.project, r.service, members) for p in (r.paths or ("",))]
        rows += [(h, f"308 -> {r.redirect_to}", r.project, r.service, "") for h in r.redirect_from]
        access = r.access_json().get("access")
        if access:  # user names and networks, never a hash
            notes.append(f"access: {r.key}: " + "; ".join(
                f"basic auth (users {', '.join(access['basic_auth'])})" if k == "basic_auth"
                else f"allow {', '.join(access['allow'])} (others get 403)" for k in access))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(col.ljust(widths[i]) if i < 4 else col for i, col in enumerate(row)).rstrip() for row in rows]
    lines += notes
    if served is not None:
        gone = sorted(set(served) - {r.key for r in table.routes})
        lines += [f"served now but not in the labels: {k} (run: luma-compose proxy sync)" for k in gone]
    for c in table.conflicts:
        lines.append(f"conflict: {c.message}")
    for p in table.problems:
        lines.append(f"ignored: {p}")
    return "\n".join(lines)
