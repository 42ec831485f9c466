"""``wsproxy replay``: a recorded session served back as a protocol-aware mock server.

``model`` holds the recorded traffic, ``plan`` decides (purely) what to send when, ``source``
loads a recording (DuckDB or JSONL), ``server`` is the aiohttp shell around the plan.
"""
