"""The bad-input checklist at the wire decoder: every case ends the connection with a
RemoteProtocolError that says what was wrong, and nothing else escapes."""

from __future__ import annotations

from collections import Counter as Tally

import pytest
from hostile_corpus import Case, cases, steady_connection

from p2psync.errors import RemoteProtocolError
from p2psync.protocol.connection import NEED_DATA
from p2psync.protocol.messages import ConnectionClosed

CASES = cases()


def feed(case: Case) -> RemoteProtocolError | None:
    conn = steady_connection()
    try:
        conn.receive_data(case.data)
        conn.receive_data(b"")  # EOF: a truncated frame must not wait forever
        for _ in range(10):
            ev = conn.next_event()
            if ev is NEED_DATA or isinstance(ev, ConnectionClosed):
                return None
    except RemoteProtocolError as exc:
        return exc
    return None


@pytest.mark.parametrize("case", CASES, ids=[f"{c.item}: {c.what}" for c in CASES])
def test_bad_input_is_a_remote_protocol_error(case: Case) -> None:
    exc = feed(case)
    assert exc is not None, f"accepted: {case.what}"
    assert str(exc).strip(), "the error must say what was wrong"


def test_decoder_corpus_summary(outcomes) -> None:
    """One record per checklist item for the report (the parametrized test proves each case)."""
    results = Tally()
    for case in CASES:
        results[(case.item, feed(case) is not None)] += 1
    for (item, rejected), n in sorted(results.items()):
        outcomes.record(
            "decoder",
            f"checklist {item}",
            "rejected (RemoteProtocolError)" if rejected else "ACCEPTED",
            trials=n,
        )
    assert all(rejected for (_item, rejected) in results)
