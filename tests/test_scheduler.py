"""Scheduled tasks: intervals, waking, run-now (also from another connection), failures recorded."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from connex_tui.engine.db import Database
from connex_tui.engine.scheduler import Scheduler, TaskResult, TaskSpec


@pytest.fixture
async def db(tmp_path):
    database = await Database.open(tmp_path / "s.db")
    yield database
    await database.close()


async def until(predicate, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_tasks_run_at_start_then_on_their_interval_and_record_results(db) -> None:
    runs: list[str] = []

    async def fast() -> TaskResult:
        runs.append("fast")
        return TaskResult(f"run {len(runs)}")

    async def slow() -> TaskResult:
        runs.append("slow")
        return TaskResult("slow done")

    scheduler = Scheduler(db, [TaskSpec("fast", 1, fast), TaskSpec("slow", 3600, slow, first_run_delay=3600)])
    await scheduler.start()
    try:
        await until(lambda: runs.count("fast") >= 2, 4)
        assert "slow" not in runs
        row = await db.fetchone("SELECT last_run, next_run, last_result FROM tasks WHERE name = 'fast'")
        assert row["last_result"].startswith("ok: run ")
        assert datetime.fromisoformat(row["next_run"]) > datetime.fromisoformat(row["last_run"])
        assert await scheduler.run_and_wait("slow") == "ok: slow done"
    finally:
        await scheduler.stop()


async def test_wake_runs_a_task_early_and_again_at_shortens_the_wait(db) -> None:
    calls = []

    async def inventory() -> TaskResult:
        calls.append(datetime.now(timezone.utc))
        again = datetime.now(timezone.utc) + timedelta(milliseconds=100) if len(calls) == 2 else None
        return TaskResult("pushed", again)

    scheduler = Scheduler(db, [TaskSpec("inventory", 3600, inventory)])
    await scheduler.start()
    try:
        await until(lambda: len(calls) == 1)
        scheduler.wake("inventory")
        await until(lambda: len(calls) == 3, 3)  # the woken run asked to come back in 0.1 s
    finally:
        await scheduler.stop()


async def test_a_failing_task_is_recorded_and_the_loop_goes_on(db) -> None:
    attempts = []

    async def flaky() -> TaskResult:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("store said no")
        return TaskResult("fine")

    scheduler = Scheduler(db, [TaskSpec("flaky", 3600, flaky)])
    await scheduler.start()
    try:
        await until(lambda: len(attempts) == 1)
        for _ in range(200):
            result = await db.fetchval("SELECT last_result FROM tasks WHERE name = 'flaky'")
            if result:
                break
            await asyncio.sleep(0.01)
        assert result == "error: store said no"
        assert await scheduler.run_and_wait("flaky") == "ok: fine"
    finally:
        await scheduler.stop()


async def test_run_now_from_another_connection_is_picked_up(db, tmp_path) -> None:
    runs = []

    async def task() -> TaskResult:
        runs.append(1)
        return TaskResult("ok")

    scheduler = Scheduler(db, [TaskSpec("catalog", 3600, task)])
    await scheduler.start()
    other = await Database.open(tmp_path / "s.db")  # what `connex-tui tasks run` or the monitor does
    try:
        await until(lambda: len(runs) == 1)
        async with other.transaction() as conn:
            await conn.execute(
                "UPDATE tasks SET next_run = ? WHERE name = 'catalog'", (datetime.now(timezone.utc).isoformat(),)
            )
        await until(lambda: len(runs) == 2, 3)
    finally:
        await other.close()
        await scheduler.stop()


async def test_unknown_task_name_is_refused(db) -> None:
    scheduler = Scheduler(db, [])
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        await scheduler.run_now("nope")
