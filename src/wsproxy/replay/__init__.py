"""``wsproxy replay``: a recorded session served back as a protocol-aware mock server.

``source`` loads a recording (DuckDB, JSONL or HAR) and keeps divergences; ``server`` is the
aiohttp shell that carries out the pure plan in ``core.replay_plan``.
"""
