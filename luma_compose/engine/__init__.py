"""The only code that talks to a Docker engine.

client: the one endpoint (SDK and ``docker`` CLI alike); state: the only reader of inspect
data (plain records out); compose_cli: the one ``docker compose`` wrapper (argv as data);
docker_engine: the operations proxy/ and deploy/ need, behind one interface they take as a parameter;
swarm (+ swarm_state, its argv and inspect JSON): the same for a swarm, records and specs in and out;
protocols: the one interface per target that the real engines and the tests' fakes satisfy;
stack_cli: ``docker stack config``, the read-back of ``render --swarm``.
The docker SDK is imported lazily: importing this package costs nothing.
"""
