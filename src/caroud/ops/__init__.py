"""Operations: ``caroud doctor``, ``caroud stats`` and the Prometheus metrics.

Pure core, thin edges, as in the rest of Caroud:

- :mod:`.derive`     metric derivations over plain ``INFO`` dicts (memory share, hit rate,
                     engine CPU from two samples, command latency from ``commandstats``)
- :mod:`.alarms`     the setup guide's alarm thresholds and scaling triggers (pure)
- :mod:`.diagnosis`  the guide's troubleshooting cases, their steps and exit codes (pure)
- :mod:`.doctor`     the step-4 connection test and the checks, against a live server
- :mod:`.stats`      collects a :class:`~caroud.ops.stats.StatsSnapshot` from Redis
- :mod:`.render`     terminal and JSON forms of both reports
- :mod:`.metrics`    prometheus-client collectors, the worker hooks, ``start_worker_metrics``
- :mod:`.cli`        the ``doctor`` and ``stats`` typer commands (wired in ``caroud.cli``)
"""
