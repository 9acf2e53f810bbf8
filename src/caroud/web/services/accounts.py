"""Players and server keys: creating them (the operator commands) and showing them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from caroud.errors import ConflictError, ValidationError
from caroud.matchmaking.validation import MAX_RATING, MIN_RATING
from caroud.web.auth import PLAYER_TOKEN_PREFIX, SERVER_KEY_PREFIX, new_token, token_hash
from caroud.web.models import DEFAULT_RATING, Player, ServerKey

NAME_RE = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}\Z")


@dataclass(frozen=True, slots=True)
class Created:
    """A new player or key with its token, shown once: only its hash is stored."""

    id: str
    token: str


def check_name(field: str, name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationError(field, f"must be 1-64 letters, digits or . _ @ + -, got {name!r}")
    return name


def check_rating(rating: Any) -> float:
    if isinstance(rating, bool) or not isinstance(rating, int | float):
        raise ValidationError("rating", f"must be a number, got {rating!r}")
    if not math.isfinite(rating) or not MIN_RATING <= rating <= MAX_RATING:
        raise ValidationError("rating", f"must be from {MIN_RATING:g} to {MAX_RATING:g}")
    return float(rating)


def create_player(name: str, rating: float = DEFAULT_RATING) -> Created:
    """A new player (and its Django user) called ``name``; :class:`ConflictError` if taken."""
    name = check_name("name", name)
    rating = check_rating(rating)
    token = new_token(PLAYER_TOKEN_PREFIX)
    user_model = get_user_model()
    try:
        with transaction.atomic():
            user = user_model.objects.create_user(username=name)
            player = Player.objects.create(user=user, rating=rating, token_hash=token_hash(token))
    except IntegrityError:
        raise ConflictError(f"a user called {name!r} exists already: choose another name") from None
    return Created(player.public_id, token)


def create_server_key(name: str) -> Created:
    """A new key for game servers, called ``name``; :class:`ConflictError` if taken."""
    name = check_name("name", name)
    token = new_token(SERVER_KEY_PREFIX)
    try:
        with transaction.atomic():
            key = ServerKey.objects.create(name=name, token_hash=token_hash(token))
    except IntegrityError:
        raise ConflictError(f"a server key called {name!r} exists already") from None
    return Created(str(key.name), token)


def player_json(player: Player) -> dict[str, Any]:
    """``{"id", "name", "rating", "games_played"}``."""
    return {
        "id": player.public_id,
        "name": player.name,
        "rating": round(player.rating, 2),
        "games_played": player.games_played,
    }
