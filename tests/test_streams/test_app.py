"""The Faust app: tables declared once with their changelog names; the consumer's fetch wait from settings."""

from __future__ import annotations

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
