"""Shared pytest wiring: the integration tests' running system (job + fan-out) is a plugin."""

pytest_plugins = ["tests.integration.system"]
