"""``/metrics`` in the Prometheus text format: a collector that reads the farm's
state at scrape time, in a registry of its own (not prometheus_client's global
one, which would also export this process's Python internals and could hold
only one farm).

Families: ``wheelfarm_jobs{state}`` (the queue's jobs, as ``status`` counts
them), ``wheelfarm_queue_depth`` (pending jobs), ``wheelfarm_live_workers``
(heard from within three leases), ``wheelfarm_local_builds{state}`` (attempts
of ``wheelfarm build`` in the farm's history), ``wheelfarm_build_duration_seconds``
(a histogram by source, target and executor), ``wheelfarm_index_generations``
(publishes, rollbacks, yanks and refreshes committed to the published index,
when the farm has one).

``wheelfarm_webhook_messages{state}`` counts the notification outbox's messages
(pending, delivered, dead).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from wheelfarm.errors import needs_extra
from wheelfarm.farm.notify import outbox
from wheelfarm.farm.state import views
from wheelfarm.farm.state.lifecycle import JobState

with needs_extra("farm", "the farm's /metrics"):
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from wheelfarm.farm.indexview import IndexView
    from wheelfarm.farm.state.queue import Queue

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds: from a cache hit to an hour-long C++ build.
BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)
LIVE_LEASES = 3  # a worker heard from within this many lease lengths counts as live

def histogram(name: str, doc: str, labels: list[str],
              samples: Iterable[tuple[tuple[str, ...], float]],
              buckets: tuple[float, ...] = BUCKETS) -> HistogramMetricFamily:
    """A histogram family from raw observations, per label values."""
    by: dict[tuple[str, ...], list[float]] = {}
    for values, seconds in samples:
        by.setdefault(values, []).append(seconds)
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, observed in sorted(by.items()):
        counts = [(str(le), float(sum(1 for x in observed if x <= le))) for le in buckets]
        family.add_metric(list(values), [*counts, ("+Inf", float(len(observed)))],
                          sum_value=sum(observed))
    return family


class FarmCollector(Collector):
    def __init__(self, queue: Queue, index: IndexView | None = None) -> None:
        self.queue = queue
        self.index = index
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        counts = views.state_counts(self.queue)
        jobs = GaugeMetricFamily("wheelfarm_jobs", "Jobs in the farm's queue by state",
                                 labels=["state"])
        for state in JobState:
            jobs.add_metric([state.value], counts.get(state.value, 0))
        yield jobs
        yield GaugeMetricFamily("wheelfarm_queue_depth", "Jobs waiting to be claimed",
                                value=counts.get(JobState.PENDING.value, 0))
        since = self.queue.clock() - LIVE_LEASES * self.queue.lease_seconds
        yield GaugeMetricFamily("wheelfarm_live_workers",
                                f"Workers heard from within {LIVE_LEASES} lease lengths",
                                value=views.live_workers(self.queue, since))
        local = CounterMetricFamily("wheelfarm_local_builds",
                                    "Attempts of wheelfarm build recorded in the farm's "
                                    "history, by state (cached: nothing ran)",
                                    labels=["state"])
        by_state: dict[str, int] = {}
        for (ended, cached), n in self.queue.local_counts().items():
            key = "cached" if cached else ended
            by_state[key] = by_state.get(key, 0) + n
        for key in sorted(by_state):
            local.add_metric([key], by_state[key])
        yield local
        yield histogram("wheelfarm_build_duration_seconds",
                        "Seconds a build attempt took, by source, target and executor",
                        ["source", "target", "executor"],
                        (((s, t, e), d) for s, t, e, d in views.durations(self.queue)))
        if self.index is not None:
            yield CounterMetricFamily("wheelfarm_index_generations",
                                      "Generations committed to the published index "
                                      "(publishes, rollbacks, yanks, refreshes)",
                                      value=self.index.generation_count())
        messages = GaugeMetricFamily("wheelfarm_webhook_messages",
                                     "Notification messages in the outbox by state",
                                     labels=["state"])
        for box_state, n in sorted(outbox.delivery_counts(self.queue.engine).items()):
            messages.add_metric([box_state], n)
        yield messages
