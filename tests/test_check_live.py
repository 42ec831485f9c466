"""The checker live in `record` and offline in `wsproxy check`, over real sockets.

Every --faults mode of the reference server yields its finding and no other error or warning;
clean traffic yields none at all; and live and offline agree exactly on the same traffic.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import recorded
from wsproxy.chat.client import ChatError, overview_flow, run_load
from wsproxy.chat.faults import FAULTS
from wsproxy.inspect.check import check_recording

# fault -> the finding codes it must produce; ALSO: codes its misbehaviour can honestly add
EXPECTED = {
    "drop-response": {"unanswered-request"},
    "duplicate-response": {"duplicate-response"},
    "orphan-response": {"orphan-response"},
    "skip-event-id": {"event-id-gap"},
    "repeat-event-id": {"event-id-not-increasing"},
    "missing-event-id": {"stateful-event-without-id"},
    "short-catchup": {"subscribe-catchup-mismatch"},
    "ms-timestamps": {"timestamp-unit"},
    "invalid-json": {"invalid-json"},
    "binary": {"binary-message"},
}
ALSO = {"short-catchup": {"event-id-gap"}}  # the event left out of catch-up is missing before the next live one


def live_findings(db: Path, session_id: int = 1) -> list[tuple]:
    return recorded(db, "SELECT conn_id, seq, epoch_us(ts), code, severity, message, request_id, event_id "
                        "FROM violations WHERE session_id = ? ORDER BY conn_id, seq, code", [session_id])


def offline_findings(db: Path, session_id: int = 1) -> list[tuple]:
    report = check_recording(db, session_id)
    return sorted(((f.conn_id, f.seq, f.ts, f.code, f.severity, f.message, f.request_id, f.event_id)
                   for f in report.findings), key=lambda row: (row[0], row[1], row[3]))


def test_every_fault_has_its_expected_codes() -> None:
    assert set(EXPECTED) == set(FAULTS)


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_each_fault_yields_its_findings_live_and_offline_alike(fault, faulty_chat_server, proxy, tmp_path) -> None:
    server = await faulty_chat_server(fault)
    session = await proxy(server.url)
    try:
        await overview_flow(session.url, timeout=0.5)
    except ChatError:
        pass  # some faults (a dropped response, a short catch-up) make the scripted users give up
    await session.stop()
    live = live_findings(session.options.db)
    codes = {row[3] for row in live}
    assert EXPECTED[fault] <= codes, live
    serious = {row[3] for row in live if row[4] in ("error", "warning")}
    assert serious <= EXPECTED[fault] | ALSO.get(fault, set()), live
    assert offline_findings(session.options.db) == live


async def test_clean_overview_flow_has_no_finding_at_all(chat_server, proxy) -> None:
    session = await proxy(chat_server.url)
    await overview_flow(session.url)
    await session.stop()
    assert live_findings(session.options.db) == []
    assert offline_findings(session.options.db) == []
    assert session.live_check.counts == {"error": 0, "warning": 0, "info": 0}


@pytest.mark.slow
async def test_a_soak_of_10000_messages_over_50_connections_is_clean(chat_server, proxy) -> None:
    session = await proxy(chat_server.url)
    result = await run_load(session.url, users=50, messages=200, window=10)
    await session.stop()
    assert result.messages_sent == 10_000 and result.responses == 10_000
    assert recorded(session.options.db, "SELECT count(*) FROM exchanges WHERE payload_type = 'new' "
                                        "AND response_seq IS NOT NULL AND error_code IS NULL") == [(10_000,)]
    assert live_findings(session.options.db) == []
    assert offline_findings(session.options.db) == []


async def test_many_faults_at_once_agree_live_and_offline(faulty_chat_server, proxy) -> None:
    server = await faulty_chat_server(",".join(f"{name}:0.3" for name in FAULTS if name != "drop-response"), seed=3)
    session = await proxy(server.url)
    try:
        await run_load(session.url, users=6, messages=40, window=4, timeout=1.0)
    except ChatError:
        pass
    await session.stop()
    live = live_findings(session.options.db)
    assert len(live) > 20
    assert offline_findings(session.options.db) == live


async def test_timeouts_agree_live_and_offline(faulty_chat_server, proxy, tmp_path) -> None:
    from wsproxy.core.profile import profile_from_dict
    server = await faulty_chat_server("drop-response:always")
    session = await proxy(server.url, profile=profile_from_dict({"response_timeout": 0.2}))
    try:
        await overview_flow(session.url, timeout=0.6)
    except ChatError:
        pass
    await session.stop()
    live = live_findings(session.options.db)
    assert any("within 0.2 s" in row[5] for row in live)
    report = check_recording(session.options.db, profile=profile_from_dict({"response_timeout": 0.2}))
    assert sorted(((f.conn_id, f.seq, f.ts, f.code, f.severity, f.message, f.request_id, f.event_id)
                   for f in report.findings), key=lambda row: (row[0], row[1], row[3])) == live


async def test_exchanges_pair_requests_with_responses_and_latency(chat_server, proxy) -> None:
    session = await proxy(chat_server.url)
    await overview_flow(session.url)
    await session.stop()
    rows = recorded(session.options.db, "SELECT payload_type, request_seq < response_seq, latency_ms >= 0, error_code "
                                        "FROM exchanges ORDER BY conn_id, request_seq")
    assert len(rows) == 13 and all(row[1] and row[2] for row in rows)
    assert {row[0] for row in rows} == {"subscribe", "new", "edit", "delete", "delivered", "read"}
