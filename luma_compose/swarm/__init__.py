"""Docker Swarm: the same compose file and ``x-luma`` as a stack on a swarm.

stack (pure): the rendered file turned into what ``docker stack deploy -c -`` accepts, and the
checks of keys Swarm ignores or rejects. routes (pure): swarm services -> route table -> Caddy
config with DNS upstreams. engine: the swarm operations, through the ``docker`` CLI of the one
endpoint (a manager). proxy: the proxy as a global swarm service, its config a Swarm config
object. deploy: ``docker stack deploy`` with Swarm's own health-gated rolling update.
"""
