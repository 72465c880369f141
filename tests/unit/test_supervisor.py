"""Named tasks: the first to die stops the daemon; shutdown goes newest first."""

from __future__ import annotations

import asyncio

import pytest

from vodarchiver.supervisor import StagesCheck, Supervisor, restart_delay


async def forever(log: list[str], name: str, running: asyncio.Event | None = None) -> None:
    """A well-behaved long-running task that records when it is stopped."""
    try:
        if running is not None:
            running.set()
        await asyncio.Event().wait()
    finally:
        log.append(name)


async def test_a_task_that_raises_is_reported_by_name() -> None:
    """wait() returns the dying task's name and its exception."""
    sup = Supervisor()
    stopped: list[str] = []
    crash = asyncio.Event()

    async def fragile() -> None:
        await crash.wait()
        raise RuntimeError("boom")

    sup.start("steady", forever(stopped, "steady"))
    sup.start("fragile", fragile())
    crash.set()
    exit_ = await sup.wait(asyncio.Event())
    assert exit_ is not None
    assert exit_.name == "fragile"
    assert isinstance(exit_.error, RuntimeError)
    assert "fragile" in exit_.describe()
    assert "boom" in exit_.describe()
    assert await sup.shutdown(timeout_s=1)
    assert stopped == ["steady"]


async def test_a_task_that_returns_counts_as_dead() -> None:
    """A task returning on its own is as wrong as one raising."""
    sup = Supervisor()

    async def quits() -> None:
        return None

    sup.start("quits", quits())
    exit_ = await sup.wait(asyncio.Event())
    assert exit_ is not None
    assert exit_.error is None
    assert "returned" in exit_.describe()


async def test_stop_request_returns_none_and_shutdown_is_newest_first() -> None:
    """A stop request ends wait() with None; tasks stop in reverse start order, a custom stop used."""
    sup = Supervisor()
    order: list[str] = []
    http_stop = asyncio.Event()

    async def http() -> None:
        await http_stop.wait()
        order.append("http")

    sup.start("http", http(), stop=http_stop.set)
    running = [asyncio.Event(), asyncio.Event()]
    sup.start("worker", forever(order, "worker", running[0]))
    sup.start("chat", forever(order, "chat", running[1]))
    await asyncio.gather(*(r.wait() for r in running))
    stop = asyncio.Event()
    stop.set()
    assert await sup.wait(stop) is None
    assert await sup.shutdown(timeout_s=2)
    assert order == ["chat", "worker", "http"]


async def test_a_task_that_will_not_stop_is_abandoned_after_the_deadline() -> None:
    """shutdown() returns False when a task outlives the deadline, and does not hang."""
    sup = Supervisor()
    release = asyncio.Event()
    running = asyncio.Event()

    async def stubborn() -> None:
        try:
            running.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()  # ignores the first cancel, as a badly written worker might

    sup.start("stubborn", stubborn())
    await running.wait()  # the cancel must land inside the try
    assert await sup.shutdown(timeout_s=0.2) is False
    release.set()


async def test_names_are_unique() -> None:
    """Starting two tasks with one name is a programming error."""
    sup = Supervisor()
    sup.start("a", forever([], "a"))
    with pytest.raises(ValueError, match="already"):
        sup.start("a", forever([], "a"))
    await sup.shutdown(timeout_s=1)


async def test_an_optional_stage_that_crashes_is_restarted_and_named_by_readyz() -> None:
    """A crashing optional stage does not end wait(); it restarts with backoff and the stages check names it and its error."""
    sup = Supervisor(restart_base_s=0.01)
    runs: list[int] = []
    second_run = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise PermissionError("Twitch refused TWITCH_CLIENT_ID/SECRET: invalid client secret")
        second_run.set()
        await asyncio.Event().wait()

    stopped: list[str] = []
    sup.start("http", forever(stopped, "http"))
    sup.start("chat", flaky, optional=True)
    await asyncio.wait_for(second_run.wait(), 5)
    assert len(runs) == 3
    health = sup.health["chat"]
    assert (health.crashes, health.restarts) == (2, 2)
    result = await StagesCheck(sup).check()
    assert not result.ok  # crashed moments ago
    assert "chat restarted after 2 crash(es): PermissionError: Twitch refused" in result.detail
    stop = asyncio.Event()
    stop.set()
    assert await sup.wait(stop) is None  # nothing died for good
    assert await sup.shutdown(timeout_s=1)


async def test_an_optional_stage_is_given_as_a_function_and_a_core_task_still_stops_the_daemon() -> (
    None
):
    """optional=True needs a function to call again; a core task that dies still ends wait()."""
    sup = Supervisor(restart_base_s=0.01)

    async def quits() -> None:
        return None

    with pytest.raises(TypeError):
        sup.start("bad", quits(), optional=True)
    sup.start("core", quits)
    exit_ = await sup.wait(asyncio.Event())
    assert exit_ is not None
    assert exit_.name == "core"
    assert restart_delay(1) == 1.0
    assert restart_delay(20) == 300.0
