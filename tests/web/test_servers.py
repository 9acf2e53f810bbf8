"""Game servers over HTTP: the pool, match starts and results, and which key may do what."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from caroud.context import Context
from caroud.matchmaking.models import MatchStatus
from caroud.servers.pool import MAX_STRIKES
from caroud.web.api.servers import router
from caroud.web.models import GameServer, MatchRecord
from caroud.web.services import create_server_key

pytestmark = pytest.mark.django_db

SERVERS = "/api/v1/servers"
SERVER = {"address": "10.1.2.3", "port": 7777, "region": "eu-west", "capacity": 2}


def register(api: Any, key: str, **changes: Any) -> dict[str, Any]:
    r = api.post(SERVERS, {**SERVER, **changes}, key)
    assert r.status_code == 201, r.content
    return dict(r.json())


def ready_server(api: Any, key: str, **changes: Any) -> dict[str, Any]:
    """Register, then heartbeat ``ready``: only then does the server take matches."""
    server = register(api, key, **changes)
    r = api.post(f"{SERVERS}/{server['id']}/heartbeat", {"state": "ready"}, key)
    assert r.status_code == 200 and r.json()["state"] == "ready", r.content
    return dict(r.json())


def test_register_heartbeat_drain_deregister(api: Any, server_key: str, ctx: Context) -> None:
    server = register(api, server_key, labels={"build": "1.4"})
    assert server["address"] == "10.1.2.3" and server["port"] == 7777
    assert server["capacity"] == 2 and server["labels"] == {"build": "1.4"}
    assert server["state"] == "starting" and server["used"] == 0, "no match before it is ready"
    assert ctx.pool.get(server["id"]).region == "eu-west"
    assert GameServer.objects.get(server_id=server["id"]).key.name == "game-servers"

    beat = api.post(f"{SERVERS}/{server['id']}/heartbeat", {"load": 0.5}, server_key)
    assert beat.status_code == 200 and beat.json()["load"] == 0.5
    assert beat.json()["state"] == "ready"
    empty = api.client.post(
        f"{SERVERS}/{server['id']}/heartbeat",
        data=b"",
        content_type="",
        headers={"Authorization": f"Bearer {server_key}"},
    )
    assert empty.status_code == 200 and empty.json()["load"] == 0, "the body may be left out"
    drain = api.post(f"{SERVERS}/{server['id']}/heartbeat", {"state": "draining"}, server_key)
    assert drain.status_code == 200 and drain.json()["state"] == "draining"

    other = register(api, server_key)
    assert api.delete(f"{SERVERS}/{other['id']}", server_key).status_code == 204
    assert api.post(f"{SERVERS}/{other['id']}/heartbeat", {}, server_key).status_code == 404


def test_server_routes_need_a_server_key(
    api: Any, server_key: str, make_player: Any, error_of: Any
) -> None:
    server = register(api, server_key)
    player = make_player()
    for token in (None, player.token, "csk_forged"):
        for method, path, body in [
            ("post", SERVERS, SERVER),
            ("post", f"{SERVERS}/{server['id']}/heartbeat", {}),
            ("delete", f"{SERVERS}/{server['id']}", None),
            ("post", "/api/v1/matches/m1/started", None),
            ("post", "/api/v1/matches/m1/result", {"winner": 0}),
        ]:
            r = api.call(method, path, body, token)
            assert r.status_code == 401, (token, path, r.content)
            assert error_of(r)["code"] == "unauthorized"


def test_a_revoked_key_is_refused(api: Any, server_key: str) -> None:
    from django.utils import timezone

    from caroud.web.models import ServerKey

    ServerKey.objects.update(revoked_at=timezone.now())
    assert api.post(SERVERS, SERVER, server_key).status_code == 401


def test_a_key_acts_only_on_its_own_servers_and_matches(
    api: Any,
    server_key: str,
    make_player: Any,
    run_worker: Any,
    error_of: Any,
    ctx: Context,
) -> None:
    server = ready_server(api, server_key)
    intruder = create_server_key("intruder").token
    r = api.post(f"{SERVERS}/{server['id']}/heartbeat", {}, intruder)
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    assert api.delete(f"{SERVERS}/{server['id']}", intruder).status_code == 404
    assert ctx.pool.get(server["id"]).id == server["id"], "still registered"

    match_id = start_a_match(api, make_player, run_worker, ctx)
    assert api.post(f"/api/v1/matches/{match_id}/started", None, intruder).status_code == 404
    r = api.post(f"/api/v1/matches/{match_id}/result", {"winner": 0}, intruder)
    assert r.status_code == 404
    assert ctx.matches.get(match_id).status is MatchStatus.ASSIGNED


def start_a_match(api: Any, make_player: Any, run_worker: Any, ctx: Context) -> str:
    a, b = make_player(rating=1500), make_player(rating=1500)
    ticket = api.post("/api/v1/tickets", {"queue": "ranked-1v1"}, a.token).json()
    api.post("/api/v1/tickets", {"queue": "ranked-1v1"}, b.token)
    assert run_worker().assigned == 1
    match_id = ctx.matchmaking.get(ticket["id"]).match_id
    assert match_id is not None
    return match_id


MATCH_ROUTES: dict[str, Any] = {
    "/matches/{match_id}/started": None,
    "/matches/{match_id}/result": {"winner": 0},
}
"""Every route a server key calls on a match, with a valid body for it."""


def refusal(
    api: Any, key: str, route: str, match_id: str
) -> tuple[int, dict[str, str], bytes, int]:
    """Status, headers and body of ``key``'s call (the id in the body replaced by ``<id>``),
    and how many database queries it made."""
    path = "/api/v1" + route.replace("{match_id}", match_id)
    with CaptureQueriesContext(connection) as queries:
        r = api.post(path, MATCH_ROUTES[route], key)
    assert f"match {match_id!r}" in r.json()["error"]["message"], "it names the id sent"
    body = r.content.replace(match_id.encode(), b"<id>")
    return r.status_code, dict(r.items()), body, len(queries)


def test_another_keys_match_answers_exactly_like_an_unknown_one(
    api: Any, server_key: str, make_player: Any, run_worker: Any, ctx: Context
) -> None:
    routes = {path for path in router.path_operations if path.startswith("/matches/")}
    assert routes == set(MATCH_ROUTES), "a new match route: add it (and its body) above"
    ready_server(api, server_key, capacity=1)
    placed = start_a_match(api, make_player, run_worker, ctx)
    # the only slot is taken: the next match waits for a server (it has none yet)
    api.post("/api/v1/tickets", {"queue": "ranked-1v1"}, make_player().token)
    api.post("/api/v1/tickets", {"queue": "ranked-1v1"}, make_player().token)
    report = run_worker()
    assert (report.matches, report.assigned) == (1, 0)
    (waiting,) = [p.match.id for p in ctx.matches.pending("ranked-1v1")]
    assert ctx.matches.get(waiting).server is None
    intruder = create_server_key("intruder").token

    for route in MATCH_ROUTES:
        for match_id in (placed, waiting):
            # an unknown id of the same length, so that even Content-Length must agree
            unknown = refusal(api, intruder, route, "x" * len(match_id))
            assert unknown[0] == 404 and b'"code": "not_found"' in unknown[2], unknown
            assert refusal(api, intruder, route, match_id) == unknown, (route, match_id)
    assert ctx.matches.get(placed).status is MatchStatus.ASSIGNED, "the intruder changed nothing"


def test_another_keys_server_answers_exactly_like_an_unknown_one(api: Any, server_key: str) -> None:
    server = ready_server(api, server_key)["id"]
    intruder = create_server_key("intruder").token
    unknown = "x" * len(server)
    for method, path, body in [
        ("post", SERVERS + "/{}/heartbeat", {}),
        ("delete", SERVERS + "/{}", None),
    ]:
        answers = [api.call(method, path.format(i), body, intruder) for i in (server, unknown)]
        assert [a.status_code for a in answers] == [404, 404]
        assert dict(answers[0].items()) == dict(answers[1].items()), path
        assert answers[0].content.replace(server.encode(), b"<id>") == answers[1].content.replace(
            unknown.encode(), b"<id>"
        ), path


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SERVER, "port": "7777"}, "port"),
        ({**SERVER, "port": 0}, "port"),
        ({**SERVER, "port": 70000}, "port"),
        ({**SERVER, "capacity": 0}, "capacity"),
        ({**SERVER, "capacity": 2.5}, "capacity"),
        ({**SERVER, "region": "mars"}, "region"),
        ({**SERVER, "address": "not an address!"}, "address"),
        ({**SERVER, "labels": {"bad key": "x"}}, "labels"),
        ({**SERVER, "labels": ["build"]}, "labels"),
        ({**SERVER, "extra": 1}, "extra"),
        ({k: v for k, v in SERVER.items() if k != "port"}, "port"),
    ],
)
def test_bad_server_bodies_are_422(
    api: Any, server_key: str, error_of: Any, body: dict[str, Any], field: str
) -> None:
    r = api.post(SERVERS, body, server_key)
    assert r.status_code == 422, r.content
    assert error_of(r)["details"]["field"] == field


@pytest.mark.parametrize(
    "body", [{"state": "sleeping"}, {"load": -1}, {"load": "high"}, {"state": None}, {"x": 1}]
)
def test_bad_heartbeats_are_422(api: Any, server_key: str, error_of: Any, body: Any) -> None:
    server = register(api, server_key)
    r = api.post(f"{SERVERS}/{server['id']}/heartbeat", body, server_key)
    assert r.status_code == 422, r.content
    error_of(r)


def test_unknown_or_invalid_server_and_match_ids(api: Any, server_key: str, error_of: Any) -> None:
    assert api.post(f"{SERVERS}/nosuch/heartbeat", {}, server_key).status_code == 404
    assert api.delete(f"{SERVERS}/bad%20id", server_key).status_code == 422
    assert api.post("/api/v1/matches/nosuch/started", None, server_key).status_code == 404
    r = api.post("/api/v1/matches/a%7Cb/result", {"winner": 0}, server_key)
    assert r.status_code == 422
    error_of(r)


def test_deregistering_sends_unstarted_matches_back_to_the_queue(
    api: Any, server_key: str, make_player: Any, run_worker: Any, ctx: Context
) -> None:
    server = ready_server(api, server_key)
    match_id = start_a_match(api, make_player, run_worker, ctx)
    assert api.delete(f"{SERVERS}/{server['id']}", server_key).status_code == 204
    assert ctx.matches.get(match_id).status is MatchStatus.REQUEUED
    assert ctx.matchmaking.count("ranked-1v1") == 2


def test_deregistering_interrupts_started_matches(
    api: Any, server_key: str, make_player: Any, run_worker: Any, ctx: Context
) -> None:
    server = ready_server(api, server_key)
    match_id = start_a_match(api, make_player, run_worker, ctx)
    assert api.post(f"/api/v1/matches/{match_id}/started", None, server_key).status_code == 200
    assert api.delete(f"{SERVERS}/{server['id']}", server_key).status_code == 204
    assert ctx.matches.get(match_id).status is MatchStatus.INTERRUPTED


def test_match_started_records_the_match(
    api: Any, server_key: str, make_player: Any, run_worker: Any, ctx: Context
) -> None:
    server = ready_server(api, server_key)
    match_id = start_a_match(api, make_player, run_worker, ctx)
    r = api.post(f"/api/v1/matches/{match_id}/started", None, server_key)
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "started" and r.json()["started_at"]
    again = api.post(f"/api/v1/matches/{match_id}/started", None, server_key)
    assert again.status_code == 200, "starting is idempotent"
    record = MatchRecord.objects.get(match_id=match_id)
    assert record.queue == "ranked-1v1" and record.server_id == server["id"]
    assert record.server_address == "10.1.2.3" and record.server_port == 7777
    assert record.started_at is not None and record.ended_at is None
    assert sorted(len(t) for t in record.teams) == [1, 1]


def test_a_server_that_never_confirms_its_starts_is_benched(
    api: Any, server_key: str, make_player: Any, run_worker: Any, ctx: Context
) -> None:
    server = ready_server(api, server_key, capacity=MAX_STRIKES)
    matches = [start_a_match(api, make_player, run_worker, ctx) for _ in range(MAX_STRIKES)]
    # none confirmed: past the start deadline (the server alive all along) they expire
    later = ctx.pool.server_time() + ctx.settings.start_deadline_s + 1
    ctx.pool.heartbeat(server["id"], now=later)
    ctx.assigner.reap(now=later)
    beat = api.post(f"{SERVERS}/{server['id']}/heartbeat", {"state": "ready"}, server_key)
    assert beat.status_code == 200
    assert (beat.json()["state"], beat.json()["used"]) == ("benched", 0)
    assert beat.json()["strikes"] == ctx.pool.get(server["id"]).strikes == MAX_STRIKES
    for match_id in matches:  # each waits for another server
        assert ctx.matches.get(match_id).status is MatchStatus.ASSIGNED
    assert run_worker().assigned == 0, "a benched server takes no match"
    r = api.post(f"/api/v1/matches/{matches[0]}/started", None, server_key)
    assert r.status_code == 409 and r.json()["error"]["code"] == "allocation_state"
