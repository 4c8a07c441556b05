"""The open model's schedule: with ``--rate`` latency is measured from when each call was
due, so one stalled call shows in the latency of every call queued behind it; the closed
model, measuring from sending, shows the stall in that one call only (the coordinated
omission the open model corrects).

The ``stall`` tool of the test server answers at once, except its 30th call, which sleeps a
second; one worker makes 100 calls. At 50 calls/s the second of stall delays the 50 calls
due during it, by a second down to nothing, so a quarter of all calls wait more than half a
second; the closed model has one slow call in a hundred."""

from __future__ import annotations

from .conftest import STALL_AT, STALL_SECONDS, BenchServer, run_bench

STALLED_MS = STALL_SECONDS * 1000
COMMON = ("--tool", "stall", "--calls", "100", "--concurrency", "1", "--warmup", "0",
          "--json", "--no-progress")


async def test_open_model_charges_the_stall_to_every_call_behind_it(
        bench_server: BenchServer) -> None:
    outcome = await run_bench(bench_server.url("websocket"), "--rate", "50", *COMMON)
    assert outcome.status == 0, outcome.err
    target = outcome.target()
    assert target["calls"] == 100
    assert target["max_ms"] >= STALLED_MS * 0.95
    assert target["p90_ms"] >= STALLED_MS / 2  # many calls waited behind the stall
    assert target["duration_s"] >= (100 - STALL_AT) / 50  # the schedule was kept


async def test_closed_model_shows_the_stall_in_one_call(bench_server: BenchServer) -> None:
    outcome = await run_bench(bench_server.url("websocket"), *COMMON)
    assert outcome.status == 0, outcome.err
    target = outcome.target()
    assert target["calls"] == 100
    assert target["max_ms"] >= STALLED_MS * 0.95
    assert target["p90_ms"] < STALLED_MS / 2  # only the stalled call itself was slow
