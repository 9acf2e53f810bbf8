"""The matchmaking queue pool: models, the pure algorithm, the Redis store and the worker."""
