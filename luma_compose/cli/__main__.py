"""``python -m luma_compose.cli``: the click CLI (as the ``luma-compose`` command, without the fast path)."""

from .main import main

main(prog_name="luma-compose")
