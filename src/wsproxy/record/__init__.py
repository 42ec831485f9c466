"""``wsproxy record``: the relay (aiohttp), the writer thread, the live checker and live SQL, and
the session that starts and stops them."""
