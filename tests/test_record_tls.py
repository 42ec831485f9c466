"""wss:// on both legs: a verified upstream (--ca), a refused one, --insecure, and --tls-cert serving."""

from __future__ import annotations

import ssl

import aiohttp
import pytest
import trustme
from aiohttp import web

from helpers import recorded, upstream_app


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca, tmp_path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
async def tls_upstream(ca):
    """The programmable upstream, served over TLS with a certificate of our private CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    runner = web.AppRunner(upstream_app(), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    yield f"wss://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def echo_once(url: str, ssl_context: ssl.SSLContext | bool = True) -> str:
    async with aiohttp.ClientSession() as http, http.ws_connect(url, ssl=ssl_context) as ws:
        await ws.send_str("über tls")
        return (await ws.receive(timeout=5)).data


async def test_wss_upstream_trusted_with_ca_file(tls_upstream, proxy, ca_file) -> None:
    session = await proxy(tls_upstream, ca_file=ca_file)
    assert await echo_once(f"{session.url}/echo") == "über tls"
    await session.stop()
    assert recorded(session.options.db, "SELECT sender, text FROM frames WHERE kind = 'text' ORDER BY seq") == [
        ("client", "über tls"), ("server", "über tls")]


async def test_wss_upstream_with_unknown_ca_is_refused_with_502_and_recorded(tls_upstream, proxy) -> None:
    session = await proxy(tls_upstream)  # verification on, our private CA not trusted
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{session.url}/echo")
    assert refused.value.status == 502
    await session.stop()
    [(status, error)] = recorded(session.options.db, "SELECT status, error FROM connections")
    assert status == 502 and "certificate" in error.lower()


async def test_wss_upstream_with_insecure_skips_verification(tls_upstream, proxy) -> None:
    session = await proxy(tls_upstream, insecure=True)
    assert await echo_once(f"{session.url}/echo") == "über tls"


async def test_serving_wss_to_clients_with_tls_cert_and_key(upstream, proxy, ca, tmp_path) -> None:
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    session = await proxy(upstream, tls_cert=str(cert_file), tls_key=str(key_file))
    assert session.url.startswith("wss://")
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    assert await echo_once(f"{session.url}/echo", client_context) == "über tls"


@pytest.mark.parametrize("options, expected", [
    ({"tls_cert": "cert.pem"}, "go together"),
    ({"tls_cert": "/nonexistent/cert.pem", "tls_key": "/nonexistent/key.pem"}, "cannot load"),
    ({"ca_file": "/nonexistent/ca.pem"}, "--ca /nonexistent/ca.pem"),
])
def test_bad_tls_options_say_what_to_fix(options, expected, tmp_path) -> None:
    from wsproxy.record.session import ConfigError, RecordOptions, RecordSession
    with pytest.raises(ConfigError, match=expected):
        RecordSession(RecordOptions(db=tmp_path / "x.duckdb", **options))
