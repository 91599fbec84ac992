"""The only code that talks to a Docker engine.

client: the one endpoint (SDK and ``docker`` CLI alike); state: the only reader of inspect
data (plain records out); compose_cli: the one ``docker compose`` wrapper (argv as data);
engine: the operations proxy/ and deploy/ need, behind one interface they take as a parameter.
The docker SDK is imported lazily: importing this package costs nothing.
"""
