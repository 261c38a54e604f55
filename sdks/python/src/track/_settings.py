"""Tuning knobs of the background sender. The defaults suit training jobs; tests shorten them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Settings:
    """Timing and size settings for one run; pass as ``track.init(settings=Settings(...))``."""

    #: Seconds between sends while the server is reachable.
    flush_interval: float = 0.1
    #: Send sooner once this many points wait in memory.
    max_buffer_points: int = 10_000
    #: Points per ingest request (the server accepts up to 100,000).
    max_batch_points: int = 50_000
    #: Seconds spent retrying one request (backoff with jitter) before it goes to the spool.
    retry_budget: float = 5.0
    #: Seconds between attempts to replay a non-empty spool.
    replay_interval: float = 1.5
    #: Seconds between spool writes while offline or spooling (fewer, larger files).
    spool_flush_interval: float = 1.0
    #: Upper bound for ``run.finish()`` to drain the queue; what is left stays in the spool.
    finish_timeout: float = 60.0
    #: Per-request network timeout (connect, read, write) in seconds.
    http_timeout: float = 30.0
    #: Seconds to wait for the server while creating the run in ``track.init``.
    init_timeout: float = 10.0
    #: An empty ingest request keeps the run's heartbeat fresh after this many idle seconds.
    heartbeat_interval: float = 30.0
