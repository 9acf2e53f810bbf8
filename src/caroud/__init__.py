"""Caroud: matchmaking and game-server pooling on Redis."""

__version__ = "0.1.0"
