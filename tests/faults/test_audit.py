"""The chaos audit's invariants, fed broken states: each one fires, and a sound state passes."""

from __future__ import annotations

from caroud.chaos.audit import MatchRow, SlotRow, Snapshot, TicketRow, check


def snapshot(
    tickets: list[TicketRow] | None = None,
    matches: list[MatchRow] | None = None,
    slots: list[SlotRow] | None = None,
    capacity: dict[str, int] | None = None,
    rated: dict[str, int] | None = None,
    recorded: dict[str, int] | None = None,
) -> Snapshot:
    return Snapshot(
        {t.id: t for t in tickets or []},
        {m.id: m for m in matches or []},
        slots or [],
        capacity or {},
        rated or {},
        recorded or {},
    )


SOUND = snapshot(
    tickets=[
        TicketRow("t1", "assigned", ("a",), "m1"),
        TicketRow("t2", "assigned", ("b",), "m1"),
        TicketRow("t3", "queued", ("a",), None),  # m1 ended: a may queue again
    ],
    matches=[MatchRow("m1", "ended", ("a", "b"), 1_000, 2_000)],
    slots=[SlotRow("m1", "released", "s1")],
    capacity={"s1": 1},
    rated={"m1": 2},
    recorded={"m1": 2},
)


def test_a_sound_state_passes() -> None:
    findings = check(SOUND, {"t1": 1.0, "t2": 1.0, "t3": 5.0}, {"m1": False}, sigkills=[])
    assert findings == type(findings)()


def test_a_player_in_two_live_matches_is_a_double_match() -> None:
    snap = snapshot(
        matches=[
            MatchRow("m1", "assigned", ("a", "b"), None, None),
            MatchRow("m2", "started", ("a", "c"), 5, None),
        ]
    )
    assert check(snap, {}, {}, []).double_matches == ["a"]


def test_overlapping_started_matches_are_a_double_match_even_once_ended() -> None:
    snap = snapshot(
        matches=[
            MatchRow("m1", "ended", ("a", "b"), 1_000, 3_000),
            MatchRow("m2", "ended", ("a", "c"), 2_000, 4_000),
            MatchRow("m3", "ended", ("b", "d"), 3_000, 4_000),  # b's follow one another
        ]
    )
    assert check(snap, {}, {}, []).double_matches == ["a"]


def test_two_active_tickets_of_one_player() -> None:
    snap = snapshot(
        tickets=[
            TicketRow("t1", "queued", ("a",), None),
            TicketRow("t2", "assigned", ("a", "b"), "m1"),
        ],
        matches=[MatchRow("m1", "started", ("a", "b", "x", "y"), 1, None)],
    )
    assert check(snap, {}, {}, []).two_active_tickets == ["a"]


def test_acknowledged_tickets_that_are_gone_and_those_near_a_sigkill() -> None:
    found = check(SOUND, {"t1": 1.0, "gone": 3.0, "late": 9.5}, {}, sigkills=[10.0])
    assert found.acked_lost == ["gone"]
    assert found.acked_lost_near_sigkill == ["late"]


def test_a_server_running_more_matches_than_its_capacity() -> None:
    snap = snapshot(
        slots=[SlotRow("m1", "started", "s1"), SlotRow("m2", "allocated", "s1")],
        capacity={"s1": 1},
    )
    assert check(snap, {}, {}, []).slots_over_capacity == ["s1"]


def test_results_never_rated_or_rated_twice() -> None:
    snap = snapshot(rated={"m1": 0, "m2": 4}, recorded={"m1": 2, "m2": 2})
    found = check(snap, {}, {"m1": False, "m2": False, "m3": True}, [])
    assert found.results_lost == ["m1", "m3"]
    assert found.ratings_applied_twice == ["m2"]
