"""Chat ingest through the real path: a Twitch-dialect IRC server in its own process streams
PRIVMSG lines over TCP at a paced rate; our recorder parses them and the writer commits batches to
PostgreSQL. Printed: the highest offered rate at which write lag (receipt to commit of the oldest
message of each batch) stayed under 1 s, and a flood's sustained rate, each against a baseline of
single-row INSERTs of the same rows measured in the same run on the same server.

The server runs in a forked child process so that its CPU is not charged to the recorder (on two cores
PostgreSQL, the server and the daemon share them anyway: the figures are for this machine).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import time
from multiprocessing.connection import Connection

import psycopg
import psycopg_pool
from psycopg.types.json import Jsonb

from bench.common import admin_database, drop_db
from tests.fakes.irc import FakeIrc
from vodarchiver.db.chat_store import ChatStore
from vodarchiver.db.migrate import migrate
from vodarchiver.metrics import Metrics
from vodarchiver.pipeline.chat_writer import ChatWriter
from vodarchiver.twitch.chat import ChatRecorder, Credentials
from vodarchiver.twitch.irc import decode
from vodarchiver.values import parse_irc_url

RATES = [
    int(r) for r in os.environ.get("BENCH_CHAT_RATES", "10000,20000,40000,60000,80000").split(",")
]
STEP_S = float(os.environ.get("BENCH_CHAT_STEP_S", "5"))
FLOOD = int(os.environ.get("BENCH_CHAT_FLOOD", "200000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
BASELINE_ROWS = int(os.environ.get("BENCH_CHAT_BASELINE_ROWS", "5000"))
TICK_S = 0.01


def line(i: int, run: int) -> str:
    """A realistic PRIVMSG (tags, emotes, badges), about 400 bytes."""
    u = i % 997
    return (f"@badge-info=subscriber/8;badges=subscriber/6,premium/1;client-nonce=n{i};color=#0000FF;"
            f"display-name=User{u};emotes=25:0-4;first-msg=0;flags=;id=r{run}-{i};mod=0;"
            f"returning-chatter=0;room-id=1337;subscriber=1;tmi-sent-ts={1_790_000_000_000 + i};"
            f"turbo=0;user-id={u};user-type= :user{u}!user{u}@user{u}.tmi.twitch.tv PRIVMSG #bench "
            f":Kappa message number {i} with some ordinary chat text in it")  # fmt: skip


def serve(pipe: Connection, mode: str, run: int) -> None:
    """Child process: the IRC server; paced steps (`rates`) or a flood."""
    asyncio.run(_serve(pipe, mode, run))
    # A forked child holds copies of the parent's tasks; leaving without tearing them down keeps
    # asyncio from reporting them as destroyed while pending.
    os._exit(0)


async def _serve(pipe: Connection, mode: str, run: int) -> None:
    fake = await FakeIrc().start()
    pipe.send(fake.tcp_url)
    client = await fake.wait_joined("bench")
    i = 0
    if mode == "flood":
        begin = time.monotonic()
        while i < FLOOD:
            await client.send([line(j, run) for j in range(i, min(FLOOD, i + 1000))])
            i += 1000
        pipe.send(("flood", begin, time.monotonic()))
    else:
        for rate in RATES:
            begin = time.monotonic()
            while (now := time.monotonic()) - begin < STEP_S:
                due = int((now - begin) * rate) - (i - getattr(client, "_step_base", 0))
                if due > 0:
                    await client.send([line(j, run) for j in range(i, i + due)])
                    i += due
                await asyncio.sleep(TICK_S)
            client._step_base = i  # type: ignore[attr-defined]
            pipe.send((rate, begin, time.monotonic()))
    pipe.send(("done", i, 0.0))
    pipe.recv()  # wait until the parent has read everything
    await fake.stop()


async def baseline(url: str) -> float:
    """Single-row INSERTs (one statement, one commit each) of the same rows: messages a second."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        begin = time.perf_counter()
        for i in range(BASELINE_ROWS):
            event = decode(line(i, 999), received_ms=0).event
            assert event is not None
            await conn.execute(
                "INSERT INTO chat_messages (msg_id, channel, kind, user_id, username, display_name,"
                " message, sent_at, tags, color) VALUES (%s, %s, 'PRIVMSG', %s, %s, %s, %s,"
                " to_timestamp(%s / 1000.0), %s, %s) ON CONFLICT (msg_id) DO NOTHING",
                (event.msg_id, event.channel, event.user_id, event.login, event.display_name,
                 event.text, event.sent_at_ms, Jsonb(event.tags), event.color),
            )  # fmt: skip
        return BASELINE_ROWS / (time.perf_counter() - begin)


async def ingest(
    url: str, mode: str, run: int
) -> tuple[list[tuple[object, float, float]], list[tuple[float, float]], int]:
    """Run the server child and our recorder + writer; returns steps, (time, lag) samples, rows."""
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("fork").Process(target=serve, args=(child, mode, run))
    proc.start()
    loop = asyncio.get_running_loop()
    url_irc = await loop.run_in_executor(None, parent.recv)
    metrics = Metrics("bench")
    async with psycopg_pool.AsyncConnectionPool(url, min_size=2, max_size=4, open=False) as pool:
        writer = ChatWriter(ChatStore(pool), metrics, flush_interval_s=0.5)

        async def anonymous() -> Credentials:
            return Credentials("", None)

        recorder = ChatRecorder("bench", endpoint=parse_irc_url(url_irc), credentials=anonymous,
                                sink=writer.add, metrics=metrics)  # fmt: skip
        samples: list[tuple[float, float]] = []

        async def watch() -> None:
            while True:
                async with writer.committed:
                    await writer.committed.wait()
                samples.append((time.monotonic(), writer.last_lag_s))

        tasks = [asyncio.create_task(t) for t in (writer.run_forever(), recorder.run(), watch())]
        steps: list[tuple[object, float, float]] = []
        while True:
            message = await loop.run_in_executor(None, parent.recv)
            if message[0] == "done":
                sent = int(message[1])
                break
            steps.append(message)
        async with asyncio.timeout(120), writer.committed:
            await writer.committed.wait_for(lambda: writer.written >= sent)
        end = time.monotonic()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        parent.send("bye")
        await loop.run_in_executor(None, proc.join, 10)
        if mode == "flood":
            steps.append(("flood_committed", steps[0][1], end))
        return steps, samples, writer.written


async def one_run(admin_url: str, run: int) -> dict[str, float]:
    """Baseline, paced steps and a flood, on one fresh database."""
    name, url = await admin_database(admin_url, "chat")
    try:
        await migrate(url)
        result = {"baseline": await baseline(url)}
        steps, samples, _ = await ingest(url, "steps", run)
        best = 0.0
        for rate, begin, end in steps:
            lags = [lag for t, lag in samples if begin <= t <= end + 1.0]
            worst = max(lags, default=float("inf"))
            result[f"lag_{rate}"] = worst
            if worst < 1.0:
                best = max(best, float(rate))  # type: ignore[arg-type]
        result["best_rate"] = best
        steps, _, written = await ingest(url, "flood", run + 100)
        (_, begin, _), (_, _, committed) = steps[0], steps[-1]
        result["flood_rate"] = written / (committed - begin)
    finally:
        await drop_db(admin_url, name)
    return result


async def main(admin_url: str) -> None:
    """Print the ingest figures against the single-row INSERT baseline."""
    runs = [await one_run(admin_url, run) for run in range(RUNS)]

    def spread(key: str) -> str:
        values = [r[key] for r in runs]
        return (
            f"{statistics.median(values):10,.0f} (min {min(values):,.0f}, max {max(values):,.0f})"
        )

    base = statistics.median(r["baseline"] for r in runs)
    print(f"\n== chat ingest: recorder over TCP from an IRC server in its own process, into "
          f"PostgreSQL (median of {RUNS}) ==")  # fmt: skip
    print(f"{'what':<58} {'messages/s':>10} {'x baseline':>11}")
    print(
        f"{'baseline: single-row INSERT + commit per message':<58} {spread('baseline')} {1:10.2f}x"
    )
    best = statistics.median(r["best_rate"] for r in runs)
    print(f"{'highest offered rate with write lag < 1 s (steps ' + ','.join(map(str, RATES)) + ')':<58} "
          f"{spread('best_rate')} {best / base:10.2f}x")  # fmt: skip
    flood = statistics.median(r["flood_rate"] for r in runs)
    print(
        f"{f'flood of {FLOOD:,} lines, receipt to commit':<58} {spread('flood_rate')} {flood / base:10.2f}x"
    )
    for rate in RATES:
        lags = [r[f"lag_{rate}"] for r in runs]
        print(f"  worst write lag at {rate:>6,} msg/s offered: median {statistics.median(lags):.2f} s, "
              f"max {max(lags):.2f} s")  # fmt: skip
