"""deploy and down: plan (pure), rollout and teardown (through an engine), checks through the proxy."""
