"""``caroud chaos``: the whole backend as real processes, faults injected, then an audit.

* :mod:`~caroud.chaos.stack` starts and supervises the processes: a real
  ``redis-server`` (AOF ``everysec``), the web server (uvicorn), three matchmaker
  workers, the WebSocket relay and the results applier;
* :mod:`~caroud.chaos.load` plays players (solos and parties, 1v1 and 2v2) and game
  servers (one that vanishes mid-match, one that never confirms a start) through the
  public HTTP API only, and records every request;
* :mod:`~caroud.chaos.faults` is the schedule: worker SIGKILL and SIGSTOP beyond the
  lease, relay and applier kills, Redis SIGSTOP 5 s and 12 s, SIGTERM and SIGKILL
  with a restart;
* :mod:`~caroud.chaos.audit` then reads Redis and the database directly, not through
  the engine's stores or its own audits, and :mod:`~caroud.chaos.report` turns it all
  into figures with their targets.

It is a test instrument: the audit is the one place outside the stores that reads
Redis keys (named by :mod:`caroud.keys`), because it must not trust the stores.
"""
