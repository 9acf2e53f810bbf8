"""Settings from the environment and .env; queue definitions from defaults or TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

from caroud.errors import ConfigError, UnknownQueueError
from caroud.matchmaking.queues import QueueRegistry
from caroud.settings import Settings


def test_settings_read_env_over_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("CAROUD_REDIS_URL=rediss://:tok@cache:6379\nCAROUD_WORKER_TICK=0.2\n")
    s = Settings.from_env({"CAROUD_WORKER_TICK": "0.05"}, dotenv_path=dotenv)
    assert s.redis_url == "rediss://:tok@cache:6379"
    assert s.worker_tick_s == 0.05


def test_settings_defaults_need_no_environment(tmp_path: Path) -> None:
    s = Settings.from_env({}, dotenv_path=tmp_path / "missing")
    assert s.redis_url is None and s.worker_tick_s <= 0.1


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CAROUD_WORKER_TICK", "fast", "not a float"),
        ("CAROUD_LEASE_TTL", "0", "at least"),
        ("CAROUD_RETRIES", "1.5", "not a int"),
        ("CAROUD_KEY_PREFIX", "a{b}", "braces"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.from_mapping({name: value})
    assert name in str(caught.value)


def test_default_queues() -> None:
    queues = QueueRegistry.defaults()
    assert {"ranked-1v1", "ranked-5v5"} <= {q.name for q in queues}
    five = queues.get("ranked-5v5")
    assert (five.teams, five.team_size, five.party_sizes) == (2, 5, (1, 2, 3, 4, 5))
    with pytest.raises(UnknownQueueError, match="ranked-1v1"):
        queues.get("casual")


def test_queues_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "q.toml"
    path.write_text(
        "[queues.duo]\nteams = 2\nteam_size = 2\nparty_sizes = [2]\n"
        "window = { initial = 10, growth_per_s = 1, max = 100 }\nregions = ['eu']\n"
    )
    duo = QueueRegistry.from_file(path).get("duo")
    assert duo.party_sizes == (2,) and duo.window.at(5) == 15 and duo.regions == ("eu",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[queues.x]\nteams = 1\nteam_size = 1\n", "teams"),
        ("[queues.x]\nteams = 2\nteam_size = 0\n", "team_size"),
        ("[queues.x]\nteams = 2\nteam_size = 2\nparty_sizes = [3]\n", "party_sizes"),
        ("[queues.x]\nteams = 2\nteam_size = 1\ncolour = 'red'\n", "unknown keys"),
        ("[queues.x]\nteams = 2\nteam_size = 1\nregions = []\n", "regions"),
        (
            "[queues.x]\nteams = 2\nteam_size = 1\nwindow = { initial = 50, max = 10 }\n",
            "window.max",
        ),
        ("[queues]\n", "no queues"),
        ("not toml ===", "not valid TOML"),
    ],
)
def test_bad_queue_files_say_what_is_wrong(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "q.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        QueueRegistry.from_file(path)
