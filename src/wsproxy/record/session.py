"""``wsproxy record`` as a library: start the recorder and the relay, stop them cleanly."""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from yarl import URL

from wsproxy.clock import now_us
from wsproxy.core.checker import Checker
from wsproxy.core.errors import UserError
from wsproxy.core.inject import Injector, Rule
from wsproxy.core.profile import CHAT_PROFILE, Profile
from wsproxy.core.protocol import MessageDecoder
from wsproxy.record.hands import HOLD_TIMEOUT, Hands
from wsproxy.record.live_check import LiveCheck
from wsproxy.record.relay import CONNECT_TIMEOUT, HANDSHAKE_TIMEOUT, MAX_PENDING, Relay, RelayConfig
from wsproxy.record.rotation import FolderPlan
from wsproxy.record.writer import Recorder
from wsproxy.store.files import RecordingError
from wsproxy.store.sql import SQL_TIMEOUT, UserSql
from wsproxy.ws import DEFAULT_MAX_MESSAGE

TICK_SECONDS = 0.25  # how often the live checker looks for requests past their timeout
# A folder's reader gets a snapshot listing the segment's Parquet parts and reads them later: merged
# parts are deleted only when no snapshot was taken for this long (more than a query's time limit).
RETIRED_PARTS_GRACE = 120.0


class ConfigError(UserError, ValueError):
    """A bad --listen, --upstream or TLS option; the message says what to fix."""


LOOPBACK = ("127.0.0.1", "localhost", "::1")  # hosts only this machine reaches


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"--listen {text!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    return host, int(port_text)


def parse_upstream(text: str) -> URL:
    try:
        url = URL(text)
    except (ValueError, TypeError):
        url = None
    if url is None or url.scheme not in ("ws", "wss") or not url.host:
        raise ConfigError(f"--upstream {text!r} must be a ws:// or wss:// URL, e.g. ws://127.0.0.1:8765")
    return url


def client_ssl_context(insecure: bool, ca_file: str | None) -> ssl.SSLContext | bool | None:
    """TLS towards a wss:// upstream: verified by default; --ca adds a private CA."""
    if insecure:
        return False
    if ca_file:
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"--ca {ca_file}: {exc}") from None
    return None


def server_ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert and not key:
        return None
    if not (cert and key):
        raise ConfigError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load --tls-cert/--tls-key: {exc}") from None
    return context


@dataclass(kw_only=True)
class RecordOptions:
    listen: str = "127.0.0.1:8080"
    upstream: str = "ws://127.0.0.1:8765"
    db: Path = Path("wsproxy.duckdb")
    label: str | None = None
    redact: bool = True
    max_message_size: int = DEFAULT_MAX_MESSAGE
    insecure: bool = False
    ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    profile: Profile = CHAT_PROFILE
    check: bool = True  # run the protocol checker live (``--no-check`` turns it off)
    inject: list[Rule] = field(default_factory=list)  # --inject rules (docs/inject.md)
    intercept: list[Rule] = field(default_factory=list)  # --intercept breakpoints (docs/ui.md)
    hold_timeout: float = HOLD_TIMEOUT  # seconds a held message waits for a person (--hold-timeout)
    seed: int = 0  # for rate= rules
    sql_timeout: float = SQL_TIMEOUT  # seconds a query of the live recording may run (--sql-timeout)
    connect_timeout: float = CONNECT_TIMEOUT  # seconds to reach the upstream and finish its handshake
    handshake_timeout: float = HANDSHAKE_TIMEOUT  # seconds a client has to send its handshake
    max_pending: int = MAX_PENDING  # connections still in their handshake before new ones are closed at once
    folder: FolderPlan | None = None  # record into a folder of segments (--workers, --rotate)
    reuse_port: bool = False  # share --listen with the other workers of --workers (SO_REUSEPORT)


class RecordSession:
    """A running proxy + recorder. ``await start()``, then ``await stop()``."""

    def __init__(self, options: RecordOptions) -> None:
        self.options = options
        self.host, self.port = parse_listen(options.listen)
        self.upstream = parse_upstream(options.upstream)
        self._client_tls = client_ssl_context(options.insecure, options.ca_file)
        self._server_tls = server_ssl_context(options.tls_cert, options.tls_key)
        self.recorder = Recorder(Path(options.db), folder=options.folder)
        self.live_check = LiveCheck(Checker(options.profile), self.recorder) if options.check else None
        self.injector = Injector(options.inject, options.seed) if options.inject else None
        self.hands = Hands(options.intercept, options.hold_timeout)  # nothing to do until a breakpoint is on
        self.relay = Relay(RelayConfig(upstream=self.upstream, max_message_size=options.max_message_size,
                                       redact=options.redact, ssl_context=self._client_tls,
                                       connect_timeout=options.connect_timeout,
                                       handshake_timeout=options.handshake_timeout, max_pending=options.max_pending),
                           self.recorder, MessageDecoder(options.profile), self.live_check, self.injector,
                           self.hands)
        self.recorder.on_failed = self._recording_failed
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task | None = None
        self.sql: UserSql | None = None  # where queries of the live recording run (live endpoint, --ui)
        self.live_query: Any = None  # the loopback endpoint serving SQL while the file is locked
        self.on_stopped: list[Callable[[], None]] = []  # called once everything is closed and written
        self.on_failed: list[Callable[[str], None]] = []  # called at once when the recording fails
        self._stopped = False
        self.url = ""

    async def start(self) -> None:
        self.recorder.start(label=self.options.label, listen=self.options.listen,
                            upstream=str(self.upstream), redacted=self.options.redact)
        try:
            self._runner = web.AppRunner(self.relay.app(), handle_signals=False, access_log=None,
                                         shutdown_timeout=2.0, keepalive_timeout=self.options.handshake_timeout)
            await self._runner.setup()
            assert self._runner.server is not None  # set up just now
            self.relay.watch(self._runner.server)
            site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._server_tls,
                               reuse_port=self.options.reuse_port or None)
            await site.start()
        except BaseException:
            if self._runner is not None:
                await self._runner.cleanup()
            self.recorder.stop()
            raise
        self.port = self._runner.addresses[0][1]
        from wsproxy.record.live_query import LiveQueryServer
        if self.options.folder is not None:
            await self._serve_snapshots(LiveQueryServer(Path(self.options.db), None, self.recorder.snapshot_cursor))
        else:
            assert self.recorder.database is not None
            self.sql = UserSql(self.recorder.database, timeout=self.options.sql_timeout)
            self.recorder.on_checkpoint_held = functools.partial(self.sql.interrupt_all, "checkpoint")
            sql = self.sql
            self.recorder.readers_idle = lambda: sql.running == 0
            self.live_query = LiveQueryServer(Path(self.options.db), self.sql)
            await self.live_query.start()
        if self.live_check is not None:
            self._ticker = asyncio.create_task(self._tick(self.live_check), name="checker-clock")
        scheme = "wss" if self._server_tls else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{scheme}://{host}:{self.port}"
        self.hands.own_url = self.url

    async def _serve_snapshots(self, live: Any) -> None:
        """A folder's readers ask for snapshots of the segment being written; the Parquet parts a
        snapshot lists must outlive the reader's queries (``RETIRED_PARTS_GRACE``)."""
        self.live_query = live
        await live.start()
        live.advertise(self.recorder.segment)
        self.recorder.on_segment = live.segment_changed
        self.recorder.readers_idle = lambda: time.monotonic() - live.last_snapshot > RETIRED_PARTS_GRACE

    def _recording_failed(self, message: str) -> None:
        self.relay.stop_relaying(message)
        for callback in self.on_failed:
            callback(message)

    @staticmethod
    async def _tick(live_check: LiveCheck) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            live_check.tick(now_us())

    async def stop(self) -> None:
        """Close every connection (1001), write everything queued, close the file.

        Raises RecordingError (once) when the recording could not be written."""
        if self._stopped:
            return
        self._stopped = True
        if self.sql is not None:
            self.sql.interrupt_all()  # a running query must not hold the stop (nor the last checkpoint)
        if self._ticker is not None:
            self._ticker.cancel()
        if self.live_query is not None:
            await self.live_query.stop()
        await self.hands.sending.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.live_check is not None:
            self.live_check.finish(now_us())  # connections are all closed by now; this is a safety net
        if self.sql is not None:
            await asyncio.to_thread(self.sql.close)
        self.recorder.stop()
        for callback in self.on_stopped:
            callback()
        if self.recorder.error:
            raise RecordingError(self.recorder.error)
