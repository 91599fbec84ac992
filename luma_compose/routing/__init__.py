"""The routing core: one model of who serves which host, for one host and for a swarm. Pure: no Docker.

* :mod:`.claims` — the records: a :class:`~.claims.Route` (what a service claims: project, service,
  hosts, port, health path, network, created, and on one host its containers), a
  :class:`~.claims.Conflict`, the :class:`~.claims.RouteTable` and the :class:`~.claims.SyncResult`.
* :mod:`.ownership` — the one rule that decides a host or target alias two routes claim.
* :mod:`.containers` (+ :mod:`.pool`, :mod:`.neighbours`) — the adapter for containers on one host.
* :mod:`.services` — the adapter for services on a swarm.

Both adapters check labels with :mod:`luma_compose.validate` (via :func:`.claims.label_problem`) and
hand their routes to :func:`.ownership.resolve`; the two Caddy layouts (``proxy/caddy_config.py``,
``swarm/routes.py``) and every command that shows or checks routes read the table that comes out.
"""
