"""A sink's position in a stream against a real redis-server: the confirmed group moves only on
`confirm`, its lag is exact (what the ingest's retention keeps), nothing is ever pending, a
start reads again what was read and not confirmed, a trim past the position is counted, stale
read groups of gone readers are deleted, and entries an earlier version left pending are written
and acknowledged."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.export.position import Mark, Position, group_marks
from services.export.sinks.influx import InfluxSink
from services.export.worker import DeadLetters, SinkWorker
from shared.retention import group_backlogs
from shared.stream import GroupReader, ReadingStream, connect
from tests.servers import RedisServer
from tests.stack.polling import until

from .servers import VictoriaMetricsServer
from .support import BOX, CLASSIC, T0, exporting, licensed_env, publish, reading

GROUP = "export-influx"


async def confirmed_group(redis: Redis, key: str = CLASSIC) -> dict[str, Any]:
    """XINFO GROUPS of the confirmed group, its texts decoded."""
    groups: Any = await redis.xinfo_groups(key)
    for group in groups:
        info = {k: v.decode() if isinstance(v, bytes) else v for k, v in group.items()}
        if info["name"] == GROUP:
            return info
    raise AssertionError(f"no group {GROUP}")


async def started(redis: Redis, consumer: str = "a", **kw: Any) -> tuple[Position, GroupReader]:
    """The confirmed group made (as `SinkWorker.create_group`), the position started."""
    await redis.xgroup_create(CLASSIC, GROUP, "0", mkstream=True, entries_read=0)
    position = Position(redis, CLASSIC, GROUP, consumer, **kw)
    await position.start()
    reader = GroupReader(ReadingStream(redis, CLASSIC), position.read_group, consumer, noack=True)
    return position, reader


async def test_confirm_moves_the_group_and_keeps_its_lag_exact(redis_server: RedisServer) -> None:
    redis = await connect(redis_server.url)
    ids = await publish(redis, CLASSIC, [reading(n) for n in range(100)])
    position, reader = await started(redis)
    got = await reader.new(count=30, block_ms=100)
    assert [e[0] for e in got] == ids[:30]
    group = await confirmed_group(redis)
    assert (group["last-delivered-id"], group["lag"]) == ("0-0", 100)  # read, not confirmed
    mark = await position.read_mark()
    assert mark == Mark(ids[29], 30)
    await position.confirm(mark)
    group = await confirmed_group(redis)
    assert (group["last-delivered-id"], group["entries-read"], group["lag"]) == (ids[29], 30, 70)
    assert group["pending"] == 0 and await redis.xpending(CLASSIC, position.read_group) == {
        "pending": 0, "min": None, "max": None, "consumers": [],
    }  # fmt: skip
    backlog = (await group_backlogs(redis, CLASSIC, "export-"))[GROUP]
    assert (backlog.entries, backlog.oldest) == (70, ids[30])  # the read group is not counted
    await redis.aclose()


async def test_a_start_reads_again_what_was_not_confirmed(redis_server: RedisServer) -> None:
    redis = await connect(redis_server.url)
    ids = await publish(redis, CLASSIC, [reading(n) for n in range(100)])
    position, reader = await started(redis)
    await reader.new(count=30, block_ms=100)
    await position.confirm(await position.read_mark())
    await reader.new(count=50, block_ms=100)  # read, then a crash: never confirmed
    await position.start()
    again = await reader.new(count=100, block_ms=100)
    assert [e[0] for e in again] == ids[30:]
    await position.confirm(await position.read_mark())
    assert (await confirmed_group(redis))["lag"] == 0
    await redis.aclose()


async def test_a_trim_past_the_position_is_counted_and_read_over(
    redis_server: RedisServer,
) -> None:
    redis = await connect(redis_server.url)
    ids = await publish(redis, CLASSIC, [reading(n) for n in range(100)])
    position, reader = await started(redis)
    await reader.new(count=30, block_ms=100)
    await position.confirm(await position.read_mark())
    await redis.xtrim(CLASSIC, maxlen=20)  # past the budget: 50 unconfirmed entries dropped
    backlog = (await group_backlogs(redis, CLASSIC, "export-"))[GROUP]
    assert (backlog.entries, backlog.missing) == (20, 50)
    rest = await reader.new(count=100, block_ms=100)
    assert [e[0] for e in rest] == ids[80:]
    await position.confirm(await position.read_mark())
    assert (await confirmed_group(redis))["last-delivered-id"] == ids[-1]
    backlog = (await group_backlogs(redis, CLASSIC, "export-"))[GROUP]
    assert (backlog.entries, backlog.missing) == (0, 0)  # (Redis 7.0's own lag stays stale)
    await redis.aclose()


async def test_read_groups_of_gone_readers_are_deleted(redis_server: RedisServer) -> None:
    redis = await connect(redis_server.url)
    await publish(redis, CLASSIC, [reading(n) for n in range(3)])
    old, old_reader = await started(redis, consumer="old-host")
    await old_reader.new(count=1, block_ms=100)
    await asyncio.sleep(0.05)  # the old reader idles 50 ms: stale past 20 ms
    new = Position(redis, CLASSIC, GROUP, "new-host", stale_ms=20)
    await new.start()
    assert set(await group_marks(redis, CLASSIC)) == {GROUP, new.read_group}
    new_reader = GroupReader(ReadingStream(redis, CLASSIC), new.read_group, "new-host", True)
    await new_reader.new(count=1, block_ms=100)
    other = Position(redis, CLASSIC, GROUP, "third", stale_ms=60_000)
    await other.start()  # `new` read a moment ago: kept
    assert set(await group_marks(redis, CLASSIC)) == {GROUP, new.read_group, other.read_group}
    await Position(redis, CLASSIC, GROUP, "fourth", stale_ms=0).start()
    assert other.read_group in await group_marks(redis, CLASSIC)  # it has not read: kept
    assert old.read_group not in await group_marks(redis, CLASSIC)
    await redis.aclose()


async def test_entries_an_earlier_version_left_pending_are_written_and_acknowledged(
    redis_server: RedisServer, victoria: VictoriaMetricsServer
) -> None:
    """The group once acknowledged each entry: a box upgraded while a batch was pending (read
    by a consumer of another name) writes it again, acknowledges it, then goes on."""
    redis = await connect(redis_server.url)
    ids = await publish(redis, CLASSIC, [reading(n) for n in range(10)])
    await redis.xgroup_create(CLASSIC, GROUP, "0", entries_read=0)
    await redis.xreadgroup(GROUP, "gone-host", {CLASSIC: ">"}, count=4)  # pending, never written
    worker = SinkWorker(
        redis, CLASSIC, InfluxSink(victoria.url, BOX), "new-host", DeadLetters(redis),
        batch_wait=0,
    )  # fmt: skip
    running = asyncio.create_task(worker.run())

    async def all_written() -> bool:
        return worker.written == 10

    await until(all_written, "all 10 written", lambda: "", 20, every=0.05)
    group = await confirmed_group(redis)
    assert (group["pending"], group["lag"], group["last-delivered-id"]) == (0, 0, ids[-1])
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    p_l2 = next(s for s in victoria.samples() if s["metric"]["__name__"] == "hanport_p_l2")
    assert p_l2["timestamps"] == [T0 + n * 1000 for n in range(10)]
    await worker.sink.close()
    await redis.aclose()


async def test_two_exports_of_one_box_both_write_everything_and_lose_nothing(
    redis_server: RedisServer, victoria: VictoriaMetricsServer, tmp_path: Path
) -> None:
    """A second export (another consumer name) has read groups of its own: it writes the same
    readings again (the store keeps each once); the confirmed position ends past the last."""
    redis = await connect(redis_server.url)
    envs = [
        await licensed_env(
            redis_server.url, tmp_path, influx_url=victoria.url, batch_size="100",
            consumer=name,
        )
        for name in ("one", "two")
    ]  # fmt: skip
    with (
        exporting(envs[0], tmp_path / "one.log") as one,
        exporting(envs[1], tmp_path / "two.log") as two,
    ):
        logs = lambda: one.output() + two.output()  # noqa: E731

        async def both_reading() -> bool:
            try:
                names = set(await group_marks(redis, CLASSIC))
            except ResponseError:  # no stream yet
                return False
            return {"read-export-influx-one", "read-export-influx-two"} <= names

        await until(both_reading, "both exports reading", logs, 30)
        ids = await publish(redis, CLASSIC, [reading(n) for n in range(2000)])

        async def done() -> bool:
            group = await confirmed_group(redis)
            return bool(group["last-delivered-id"] == ids[-1] and group["lag"] == 0)

        await until(done, "confirmed to the last", logs, 60)
    p_l2 = next(s for s in victoria.samples() if s["metric"]["__name__"] == "hanport_p_l2")
    assert p_l2["timestamps"] == [T0 + n * 1000 for n in range(2000)]  # each once, none lost
    await redis.aclose()


async def test_redis_losing_its_data_is_waited_out(
    redis_server: RedisServer, victoria: VictoriaMetricsServer
) -> None:
    """Both groups gone (FLUSHALL, as a Redis without persistence restarted): the worker makes
    them again and exports what comes next."""
    redis = await connect(redis_server.url)
    await publish(redis, CLASSIC, [reading(n) for n in range(10)])
    worker = SinkWorker(
        redis, CLASSIC, InfluxSink(victoria.url, BOX), "host", DeadLetters(redis), batch_wait=0
    )
    running = asyncio.create_task(worker.run())

    def written(count: int) -> Any:
        async def check() -> bool:
            return worker.written == count

        return check

    await until(written(10), "the first 10", lambda: "", 20, every=0.05)
    await redis.flushall()
    await publish(redis, CLASSIC, [reading(n) for n in range(10, 20)])
    await until(written(20), "the next 10", lambda: "", 30, every=0.05)
    assert running.done() is False
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    p_l2 = next(s for s in victoria.samples() if s["metric"]["__name__"] == "hanport_p_l2")
    assert p_l2["timestamps"] == [T0 + n * 1000 for n in range(20)]
    await worker.sink.close()
    await redis.aclose()
