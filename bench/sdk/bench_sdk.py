"""SDK figures for trackstack-bench: `run.log` latency in the caller's thread, and one process's sustained rate.

Usage: TRACKSTACK_URL=http://127.0.0.1:3000 python bench/sdk/bench_sdk.py POINTS
Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
import time

import track

LATENCY_CALLS = 20_000


def main() -> None:
    points = int(sys.argv[1])
    run = track.init(project="bench-sdk", name="sdk-latency")
    latencies = []
    for step in range(LATENCY_CALLS):
        data = {"a": step * 0.1, "b": 1.0, "c": 2.0, "d": 3.0, "e": 4.0}
        started = time.perf_counter_ns()
        run.log(data)
        latencies.append(time.perf_counter_ns() - started)
    run.finish()
    latencies.sort()

    run = track.init(project="bench-sdk", name="sdk-throughput")
    calls = points // 10
    keys = [f"m{i}" for i in range(10)]
    started = time.perf_counter()
    for step in range(calls):
        run.log(dict.fromkeys(keys, step * 1e-3))
    logged = time.perf_counter() - started
    run.finish()  # returns once every point is acknowledged by the server
    delivered = time.perf_counter() - started
    print(
        json.dumps(
            {
                "log_median_us": latencies[len(latencies) // 2] / 1e3,
                "log_p99_us": latencies[int(len(latencies) * 0.99)] / 1e3,
                "points": calls * 10 + LATENCY_CALLS * 5,
                "log_points_per_s": calls * 10 / logged,
                "delivered_points_per_s": calls * 10 / delivered,
            }
        )
    )


if __name__ == "__main__":
    main()
