"""luma-compose: route many Docker Compose projects behind one reverse proxy.

The Python API lives in :mod:`luma_compose.api` (see docs/python-api.md)::

    from luma_compose.api import render, check
    result = render(["compose.yaml"], project="gmail")
    if result.ok:
        print(result.text)
    for problem in check(["compose.yaml"]):
        print(problem.location(), problem.message, problem.hint)
"""

__version__ = "0.1.0"
