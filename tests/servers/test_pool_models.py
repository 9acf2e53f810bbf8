"""The pool's plain data: the audit of a snapshot, and the text forms of records."""

from __future__ import annotations

from caroud.servers import AllocationState
from caroud.servers.models import (
    audit_snapshot,
    decode_allocation,
    decode_labels,
    encode_labels,
    label_pattern,
)


def test_audit_of_a_sound_snapshot() -> None:
    fields = {"a:cap": "2", "a:used": "1", "a:reg": "eu", "b:cap": "1", "b:used": "0"}
    audit = audit_snapshot(fields, ["a/m1"], 3)
    assert audit.ok
    assert (audit.servers, audit.used_slots, audit.running_allocations) == (2, 1, 1)


def test_audit_finds_overfilled_and_unaccounted_servers() -> None:
    fields = {"a:cap": "1", "a:used": "2", "b:cap": "2", "b:used": "1"}
    audit = audit_snapshot(fields, ["a/m1", "a/m2", "b/m3", "b/m4", "gone/m5"], 3)
    assert audit.over_capacity == ("a",)
    assert audit.unaccounted == ("b", "gone")
    assert not audit.ok
    assert not audit_snapshot({"a:cap": "1", "a:used": "0"}, [], 2).ok  # the gauge is off


def test_labels_round_trip_and_match_whole_values() -> None:
    labels = {"maps": "arena", "build": "1.4"}
    text = encode_labels(labels)
    assert text == ",build=1.4,maps=arena,"
    assert decode_labels(text) == labels
    assert encode_labels({}) == "" and decode_labels("") == {}
    assert label_pattern("build", "1.4") in text
    assert label_pattern("build", "1") not in text


def test_decode_allocation() -> None:
    a = decode_allocation("m1", "started|g1|eu|10.0.0.1|7777|1000|31000|2500|")
    assert (a.state, a.server_id, a.port) == (AllocationState.STARTED, "g1", 7777)
    assert (a.allocated_at, a.start_deadline, a.started_at, a.ended_at) == (1.0, 31.0, 2.5, None)
    assert a.running
