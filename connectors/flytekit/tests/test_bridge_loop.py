"""The handoff to the bridge's own loop: what a bridged call promises the service, tested without flytekit's
connectors (a plain coroutine stands for one)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from core_connectors_flytekit._loop import LOOP_ENV, run_on_bridge_loop, runner_for

caller = contextvars.ContextVar("caller", default="")


async def test_a_blocking_call_runs_on_the_bridge_thread_and_the_service_loop_keeps_running():
    async def blocking():
        time.sleep(0.3)  # what flytekit connectors do inside `async def`
        return threading.get_ident()

    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(ticker())
    thread = await run_on_bridge_loop(blocking())
    beat.cancel()
    assert thread != threading.get_ident()
    assert ticks >= 10  # the service's loop was not stalled by the 300 ms


async def test_the_result_exception_and_context_come_back():
    async def answer():
        return caller.get()

    async def fail():
        raise ValueError("the vendor said no")

    caller.set("propeller")
    assert await run_on_bridge_loop(answer()) == "propeller"
    with pytest.raises(ValueError, match="the vendor said no"):
        await run_on_bridge_loop(fail())


@pytest.mark.parametrize("stop", [SystemExit(2), KeyboardInterrupt()])
async def test_sys_exit_in_a_bridged_call_fails_that_call_and_the_bridge_loop_lives_on(stop):
    """flytekit's Sensor engine imports the module its metadata names: one whose import calls sys.exit."""

    async def exiting():
        raise stop

    async def fine():
        return "still here"

    with pytest.raises(RuntimeError, match=f"the flytekit connector raised {type(stop).__name__}"):
        await asyncio.wait_for(run_on_bridge_loop(exiting()), 5)
    assert await asyncio.wait_for(run_on_bridge_loop(fine()), 5) == "still here"


async def test_cancelling_the_call_cancels_the_coroutine_on_the_bridge_loop():
    started, cancelled = threading.Event(), threading.Event()

    async def slow():
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    call = asyncio.create_task(run_on_bridge_loop(slow()))
    assert await asyncio.to_thread(started.wait, 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await asyncio.to_thread(cancelled.wait, 5), "the coroutine on the bridge loop was not cancelled"


async def test_many_calls_at_once_each_get_their_own_answer():
    async def echo(i):
        await asyncio.sleep(0.001 * (i % 5))
        return i

    assert await asyncio.gather(*(run_on_bridge_loop(echo(i)) for i in range(200))) == list(range(200))


async def _async_method():
    return threading.current_thread().name


def _plain_method():
    return threading.current_thread().name


@pytest.mark.parametrize("setting", ["", "bridge", " bridge "])
async def test_by_default_every_method_runs_on_the_bridge_loop(monkeypatch, setting):
    monkeypatch.setenv(LOOP_ENV, setting)
    assert runner_for(_async_method) is run_on_bridge_loop
    assert await runner_for(_async_method)(_async_method()) == "flytekit-bridge-loop"


async def test_with_the_service_loop_async_methods_stay_on_it_and_plain_ones_keep_the_bridge(monkeypatch):
    monkeypatch.setenv(LOOP_ENV, "service")
    assert await runner_for(_async_method)(_async_method()) == threading.current_thread().name
    assert runner_for(_plain_method) is run_on_bridge_loop  # its pool is sized for blocking connectors


def test_an_unknown_loop_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(LOOP_ENV, "sideways")
    with pytest.raises(
        ValueError, match=r"CORE_CONNECTORS_FLYTEKIT_LOOP='sideways' \(--flytekit-loop\): expected one of"
    ):
        runner_for(_async_method)
