"""AsyncApplication on the memory store: the same behaviour as Application, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from examples.users.domain import User, UserDeactivatedError

from kes import (
    AggregateNotFoundError,
    ConcurrencyError,
    MemoryEventStore,
    MemorySnapshotStore,
    NewEvent,
    retry_on_conflict,
)
from kes.aio import AsyncApplication, AsyncEventStore, AsyncMemoryEventStore

T = TypeVar("T")
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Clock:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return T0 + timedelta(minutes=self.calls)


def app(snapshot_every: int | None = None) -> AsyncApplication:
    snapshots = MemorySnapshotStore() if snapshot_every else None
    return AsyncApplication(
        AsyncMemoryEventStore(),
        snapshots=snapshots,
        snapshot_every={"User": snapshot_every} if snapshot_every else None,
        clock=Clock(),
    )


async def history(a: AsyncApplication, changes: int) -> User:
    user = User("u1", "jdoe", "e0@example.com")
    await a.save(user)
    for i in range(1, changes + 1):
        user.change_email(f"e{i}@example.com")
        await a.save(user)
    return user


def test_saved_aggregate_loads_with_the_same_state_and_past_versions() -> None:
    async def scenario() -> None:
        a = app()
        user = await history(a, 3)
        loaded = await a.get(User, "u1")
        assert vars(loaded) == vars(user) and loaded.version == 4
        assert (await a.get(User, "u1", version=2)).email == "e1@example.com"
        # ``at``: the clock gave each save the next minute after T0
        assert (await a.get(User, "u1", at=T0 + timedelta(minutes=1))).version == 1
        with pytest.raises(AggregateNotFoundError, match="at version 4; it has no version 9"):
            await a.get(User, "u1", version=9)
        with pytest.raises(AggregateNotFoundError, match="does not exist"):
            await a.get(User, "nobody")
        assert await a.repository(User).contains("u1")

    run(scenario())


def test_stale_copy_raises_conflict_and_writes_nothing() -> None:
    async def scenario() -> None:
        a = app()
        await a.save(User("u1", "jdoe", "e0@example.com"))
        first, second = await a.get(User, "u1"), await a.get(User, "u1")
        first.change_email("a@example.com")
        second.change_email("b@example.com")
        await a.save(first)
        with pytest.raises(ConcurrencyError, match="expected version 1"):
            await a.save(second)
        assert (await a.get(User, "u1")).email == "a@example.com"

    run(scenario())


def test_update_retries_on_conflict_with_a_fresh_load() -> None:
    async def scenario() -> None:
        a = app()
        await a.save(User("u1", "jdoe", "e0@example.com"))
        calls = 0

        async def change(user: User) -> str:
            nonlocal calls
            calls += 1
            if calls == 1:  # someone else saves between our load and our save
                other = await a.get(User, "u1")
                other.rename("other")
                a.repository(User).forget("u1")
                await a.save(other)
            user.change_email("new@example.com")
            return user.email

        assert await a.update(User, "u1", change) == "new@example.com"
        assert calls == 2
        loaded = await a.get(User, "u1")
        assert (loaded.username, loaded.email, loaded.version) == ("other", "new@example.com", 3)

    run(scenario())


def test_update_gives_up_after_its_attempts_and_domain_errors_pass_through() -> None:
    async def scenario() -> None:
        a = app()
        await a.save(User("u1", "jdoe", "e0@example.com"))

        async def always_conflicts(user: User) -> None:
            other = await a.get(User, "u1", version=user.version)
            other.rename(f"r{other.version}")
            a.repository(User).forget("u1")
            await a.save(other)
            user.rename("mine")

        with pytest.raises(ConcurrencyError):
            await a.update(User, "u1", always_conflicts, attempts=2)
        await a.update(User, "u1", lambda u: u.deactivate("bye"))
        with pytest.raises(UserDeactivatedError):
            await a.update(User, "u1", lambda u: u.rename("x"))

    run(scenario())


def test_snapshots_are_taken_every_n_events_and_loads_start_from_them() -> None:
    async def scenario() -> None:
        a = app(snapshot_every=3)
        await history(a, 7)  # versions 1..8
        snap = a.snapshots.get("User", "u1") if a.snapshots else None
        assert snap is not None and snap.version == 6
        a.repository(User).forget("u1")
        reads: list[int] = []
        store = a.store
        original = store.read_stream

        async def spy(*args: Any, **kwargs: Any) -> Any:
            reads.append(args[2] if len(args) > 2 else 1)
            return await original(*args, **kwargs)

        store.read_stream = spy  # type: ignore[method-assign]
        loaded = await a.get(User, "u1")
        assert loaded.version == 8 and loaded.email == "e7@example.com"
        assert reads == [7]  # replayed only the events after the snapshot

    run(scenario())


def test_cache_hit_still_sees_events_appended_by_others() -> None:
    async def scenario() -> None:
        a = app()
        await history(a, 1)
        await a.get(User, "u1")  # cached now
        await a.store.append(
            "User", "u1", [NewEvent(event_type="EmailChanged", payload={"email": "x@y"})], 2
        )
        assert (await a.get(User, "u1")).email == "x@y"

    run(scenario())


def test_retry_on_conflict_decorates_coroutine_functions() -> None:
    attempts = 0

    @retry_on_conflict(3)
    async def flaky() -> int:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConcurrencyError("User", "u1", 1, 2)
        return attempts

    assert run(flaky()) == 3


def test_any_threaded_store_serves_asyncio_through_its_thread_pool() -> None:
    async def scenario() -> None:
        store = AsyncEventStore(MemoryEventStore(), threads=2)
        a = AsyncApplication(store)
        await a.save(*[User(f"u{i}", "n", f"{i}@x") for i in range(20)])
        assert [e.version async for e in store.read_all("User")] == [1] * 20
        await store.close()

    run(scenario())


def test_concurrent_updates_of_one_aggregate_never_lose_one() -> None:
    async def scenario() -> None:
        a = app()
        await a.save(User("u1", "jdoe", "e0@example.com"))

        async def rename(i: int) -> None:
            await a.update(User, "u1", lambda u: u.rename(f"n{i}"), attempts=50)

        await asyncio.gather(*(rename(i) for i in range(20)))
        assert (await a.get(User, "u1")).version == 21

    run(scenario())


def test_an_update_retried_with_its_idempotency_key_writes_nothing_new() -> None:
    from decimal import Decimal

    from examples.shop.domain import Order

    async def scenario() -> None:
        a = app()
        await a.save(Order("o1", "ada"), idempotency_key="place-1")
        await a.save(Order("o1", "ada"), idempotency_key="place-1")  # a retried create
        for _ in range(2):  # the same command, sent twice
            await a.update(
                Order, "o1", lambda o: o.add_line("tea", 1, Decimal(2)), idempotency_key="k1"
            )
        order = await a.get(Order, "o1")
        assert order.version == 2 and order.lines["tea"]["quantity"] == 1
        await a.update(
            Order, "o1", lambda o: o.add_line("tea", 1, Decimal(2)), idempotency_key="k2"
        )
        assert (await a.get(Order, "o1")).lines["tea"]["quantity"] == 2

    run(scenario())
