"""The Faust app: tables declared once with their changelog names; the consumer's fetch wait and commits."""

from __future__ import annotations

from faust.types import TP

from streams import topics
from streams.app import create_app
from streams.scoring import RuleScorer
from streams.settings import Settings


async def test_the_worker_consumer_waits_the_configured_fetch_time_not_fausts_1500_ms() -> None:
    app = create_app(Settings(fetch_max_wait_ms=123, app_id="fetch-wait"))
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == 123
    finally:
        await consumer.stop()


async def test_every_table_changelog_is_a_topic_the_project_creates() -> None:
    app = create_app(Settings(app_id="tables-check"))
    assert set(app.tables.changelog_topics) == {topics.changelog("tables-check", t) for t in topics.TABLES}
    assert set(app.tables.changelog_topics) <= set(topics.all_topics("tables-check"))


async def test_a_worker_stopped_before_its_consumer_started_still_flushes_its_producer(tmp_path) -> None:
    app = create_app(Settings(app_id="stop-unstarted", data_dir=str(tmp_path)), scorer=RuleScorer(), plugins=[])
    flushed: list[bool] = []
    flush = app._producer_flush

    async def spy(logger: object) -> None:
        flushed.append(True)
        await flush(logger)

    app._producer_flush = spy  # type: ignore[method-assign]
    await app.on_stop()  # the vitals hook on on_before_shutdown must not raise ConsumerNotStarted
    assert flushed == [True]


class _Held:
    """A delivered message as Faust's consumer tracks it (partition, offset, acknowledged or not)."""

    def __init__(self, tp: TP, offset: int) -> None:
        self.tp, self.offset, self.acked = tp, offset, False


async def test_the_consumer_never_commits_past_an_event_held_unacknowledged() -> None:
    consumer = create_app(Settings(app_id="commit-check")).consumer
    tp = TP(topics.VITALS, 0)
    consumer._committed_offset[tp] = 10
    held = _Held(tp, 10)  # e.g. a patient's first unwritten vitals event, at the committed offset
    consumer._unacked_messages.add(held)
    for offset in range(11, 21):  # every event after it acknowledged
        consumer._acked[tp].append(offset)
        consumer._acked_index[tp].add(offset)
    assert consumer._filter_committable_offsets([tp]) == {}  # Faust alone commits 21 here (issue #606)
    held.acked = True
    consumer._unacked_messages.discard(held)
    consumer._acked[tp].append(10)
    consumer._acked_index[tp].add(10)
    assert consumer._filter_committable_offsets([tp]) == {tp: 21}


async def test_the_consumer_commits_up_to_a_held_event_and_over_an_offset_it_never_delivered() -> None:
    consumer = create_app(Settings(app_id="commit-check-2")).consumer
    held_tp, gap_tp = TP(topics.ECG_WAVEFORM, 0), TP(topics.ECG_WAVEFORM, 1)
    for tp in (held_tp, gap_tp):
        consumer._committed_offset[tp] = 10
    held = _Held(held_tp, 15)
    consumer._unacked_messages.add(held)
    for tp, offsets in ((held_tp, [10, 11, 12, 13, 14, 16, 17]), (gap_tp, list(range(11, 18)))):
        consumer._acked[tp].extend(offsets)
        consumer._acked_index[tp].update(offsets)
    # held_tp: up to the held event; gap_tp: offset 10 was never delivered (a transaction marker, a compacted
    # record), so Faust's own rule stands and commits over it
    assert consumer._filter_committable_offsets([held_tp, gap_tp]) == {held_tp: 15, gap_tp: 18}
    assert sorted(consumer._acked[held_tp]) == [16, 17]  # kept for the commit after the held event
