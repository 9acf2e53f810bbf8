"""Outage: one log line when a dependency goes away, reminders, one when it is back."""

from __future__ import annotations

import logging

import pytest

from caroud.outage import Outage


def test_an_outage_is_logged_once_with_growing_capped_delays(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [100.0]
    monkeypatch.setattr("caroud.outage.time.monotonic", lambda: clock[0])
    log = logging.getLogger("test.outage")
    caplog.set_level(logging.WARNING, logger="test.outage")
    outage = Outage(log, "the thing", first_delay_s=0.1, max_delay_s=1.0, remind_s=60)
    outage.ok()
    assert not caplog.records and not outage.down
    delays = []
    for _ in range(8):
        delays.append(outage.failed(ConnectionError("refused")))
        clock[0] += 1
    assert outage.down and outage.failures == 8
    assert all(0.05 <= d <= 1.0 for d in delays) and delays[-1] >= 0.5  # capped at 1 s
    assert [r.getMessage() for r in caplog.records] == [
        "the thing failed, retrying until it is back: refused"
    ]
    clock[0] += 60
    outage.failed(ConnectionError("refused"))
    assert "still failing after 68 s (9 attempts)" in caplog.records[-1].getMessage()
    outage.ok()
    back = caplog.records[-1].getMessage()
    assert back == "the thing works again after 68.0 s (9 failed attempts)"
    assert not outage.down
    outage.ok()
    assert len(caplog.records) == 3, "nothing more while all is well"
    again = outage.failed(ConnectionError("again"))
    assert again <= 0.1, "a new outage starts from the first delay"
