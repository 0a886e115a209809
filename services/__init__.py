"""Standalone asyncio services (no pyflink): the WebSocket fan-out."""
