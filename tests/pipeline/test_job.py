import msgspec
import trio

from atomic.contract import JobError, JobSpec, OutputEvent, StateEvent, TokenEvent
from atomic.pipeline.job import EventBuffer, Job, State


async def test_slow_reader_gets_coalesced_tokens_but_every_state():
    buf = EventBuffer()
    other = EventBuffer()  # events are shared by every watcher: coalescing copies
    shared = TokenEvent(text="0")
    buf.push(StateEvent(state="GENERATING", progress=0.1))
    buf.push(shared)
    other.push(shared)
    for i in range(1, 1000):
        buf.push(TokenEvent(text=str(i % 10)))
    buf.push(StateEvent(state="PACKAGING", progress=0.6))
    buf.push(OutputEvent(stream="stdout", data="a"))
    buf.push(OutputEvent(stream="stdout", data="b"))
    buf.push(OutputEvent(stream="stderr", data="c"))
    batch = await buf.get_batch()
    assert [type(e) for e in batch] == [StateEvent, TokenEvent, StateEvent, OutputEvent, OutputEvent]
    assert len(batch[1].text) == 1000
    assert batch[3].data == "ab" and batch[4].data == "c"
    assert buf.coalesced == 1000 - 1 + 1
    assert shared.text == "0" and (await other.get_batch())[0].text == "0"


async def test_job_document_and_stage_timing(autojump_clock):
    job = Job(JobSpec(prompt="p", priority="high"))
    buf = job.watch()
    job.enter(State.PARSING)
    await trio.sleep(0.25)
    job.enter(State.GENERATING)
    await trio.sleep(1.0)
    job.finish(State.COMPLETE)
    doc = msgspec.to_builtins(job.document())
    assert doc["state"] == "COMPLETE" and doc["progress"] == 1.0 and doc["priority"] == "high"
    assert [s["name"] for s in doc["stages"]] == ["PARSING", "GENERATING"]
    assert [s["duration_ms"] for s in doc["stages"]] == [250.0, 1000.0]
    assert "wait" not in doc["request"]
    events = msgspec.to_builtins(await buf.get_batch())
    assert [e["type"] for e in events] == ["state", "state", "state", "done"]
    assert await buf.get_batch() == []  # closed after done
    # A watcher arriving after the end gets the done event at once.
    late = job.watch()
    assert [e["type"] for e in msgspec.to_builtins(await late.get_batch())] == ["done"]


async def test_round_trip_through_the_stored_document():
    job = Job(JobSpec(prompt="p"))
    job.enter(State.PARSING)
    job.finish(State.FAILED, JobError(code="x", message="y", stage="PARSING"))
    again = Job.from_document(job.document())
    assert again.document() == job.document()
    assert again.finished.is_set()  # a stored terminal job is finished


def test_ids_are_32_hex_digits_that_sort_by_creation() -> None:
    import time

    from atomic.pipeline.job import new_id

    first = [new_id() for _ in range(50)]
    time.sleep(0.002)
    later = new_id()
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in [*first, later])
    assert len(set(first)) == 50  # 80 random bits after the millisecond
    assert all(i[:12] <= later[:12] for i in first) and later > max(first)
    assert abs(int(later[:12], 16) - time.time_ns() // 1_000_000) < 5_000  # the creation time, in ms
