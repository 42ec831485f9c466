"""``--inject``: the relay misbehaving on purpose, as the rules say (``core.inject`` decides which
fire; this carries them out on the legs), recording what it did and telling the checker what each
side received."""

from __future__ import annotations

import asyncio
from typing import Any

from wsproxy.clock import now_us
from wsproxy.core.closing import MAX_REASON_BYTES, Side, other
from wsproxy.core.inject import Seen, outcome
from wsproxy.core.rows import InjectionRow, frame_row
from wsproxy.record.legs import Conn, carry_out, send


async def relay_injected(relay: Any, legs: dict[str, Any], conn: Conn, sender: Side, is_text: bool,
                         data: Any) -> bool:
    """Relay one data frame as the --inject rules say, record what was done (the frame with how often
    it was delivered, an ``injections`` row), and tell the checker what the other side received.
    True when a rule closed the connection."""
    recorder, dest, conn_id = relay.recorder, legs[other(sender)], conn.conn_id
    ts, seq = now_us(), conn.next_seq()
    kind = "text" if is_text else "binary"
    parsed = relay.decoder.decode(kind, data, sender)
    fired = relay.injector.fire(Seen(conn_id, sender, parsed.msg_type, parsed.payload_type or parsed.event_type,
                                     parsed.msg_id))
    rule = fired[0] if fired else None
    out = outcome(rule, data)
    if out.pause:  # everything after it in this direction waits too: the pump is held
        await asyncio.sleep(out.pause)
    for item in out.sends:
        await send(dest, isinstance(item, str), item)
    await send_held(conn, sender, dest, recorder)  # one held before goes out after this one (or now, if
    # this one is held in its turn: a run of reordered messages shifts each by one, none is lost)
    row = frame_row(conn_id, seq, ts, sender, kind, data, parsed)
    if out.delivered != 1:
        row.delivered = out.delivered
    if out.later is not None:  # recorded once it went out (or, if the connection ended first, as not delivered)
        task = asyncio.create_task(_send_later(relay, dest, conn, row, is_text, data, out.later))
        conn.later.add(task)
        task.add_done_callback(conn.later.discard)
    elif out.hold:
        conn.held[sender] = (is_text, data, row, parsed)
    else:
        recorder.add_frame(row)
    relay.counters.frames[sender] += 1
    relay.counters.bytes[sender] += len(data)
    if rule is not None:
        relay.counters.injected += 1
        corrupt = rule.action == "corrupt"
        recorder.add_injection(InjectionRow(session_id=recorder.session_id, conn_id=conn_id, seq=seq, ts=ts,
                                            sender=sender, action=rule.action, rule=rule.text, detail=out.detail,
                                            source="inject", original=data if corrupt and is_text else None,
                                            sent=out.sends[0] if corrupt else None))
        if relay.observer is not None:
            relay.observer.injected(conn_id)
    if conn.observer is not None:  # what the other side got (a delayed or held one: when it goes out)
        for item in out.sends:
            conn.observer(conn_id, seq, ts, sender, parsed if item is data else relay.decoder.decode("text", item, sender))
    if out.close is not None and rule is not None:  # only a close= rule closes
        await carry_out(conn.closing.injected(out.close, f"wsproxy --inject: {rule.text}"[:MAX_REASON_BYTES]), legs)
        return True
    return False


async def _send_later(relay: Any, dest: Any, conn: Conn, row: Any, is_text: bool, data: Any,
                      seconds: float) -> None:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:  # the connection ended first: it was never delivered
        row.delivered = 0
        relay.recorder.add_frame(row)
        raise
    await send(dest, is_text, data)
    relay.recorder.add_frame(row)
    if conn.observer is not None:
        conn.observer(conn.conn_id, row.seq, now_us(), row.sender,
                      relay.decoder.decode("text" if is_text else "binary", data, row.sender))


async def send_held(conn: Conn, sender: Side, dest: Any, recorder: Any) -> None:
    """``reorder``: the message held back goes out now, after the one that overtook it (or before a close),
    and is recorded."""
    held = conn.held.pop(sender, None)
    if held is None:
        return
    is_text, data, row, parsed = held
    await send(dest, is_text, data)
    recorder.add_frame(row)
    if conn.observer is not None:
        conn.observer(conn.conn_id, row.seq, now_us(), sender, parsed)


async def settle(conn: Conn, recorder: Any) -> None:
    """The connection is over: delayed messages still waiting are cancelled, and they and a message still
    held back by ``reorder`` are recorded as not delivered."""
    for task in list(conn.later):
        task.cancel()
    if conn.later:
        await asyncio.gather(*conn.later, return_exceptions=True)
    for _, _, row, _ in conn.held.values():
        row.delivered = 0
        recorder.add_frame(row)
    conn.held.clear()
