"""The compose-file side: parse, check and render. Never talks to a Docker engine.

source (YAML with positions) -> xluma (which services are routed) -> rules (checks)
-> render (splices the contract's additions into the text, via splice) -> pipeline
(the whole render/check of one text, with the read-back verification). inputs knows
how Compose finds files, ``.env`` and the project name; merge merges several files by the
compose-spec rules; readback compares Compose's models of a
merged render's files and output (the engine runs Compose).
"""
