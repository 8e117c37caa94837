"""``GET /metrics``: the station in Prometheus' text format (OpenMetrics when asked for).

Each app has its own registry holding one collector. The collector reads, at scrape time, what
the station keeps anyway (sessions, failure counters, the ledger writer's queue, the narrator's
speech renders, the shared caches) and the station's own prometheus-client instruments
(:class:`dj.stream.stats.StationStats`). Nothing here runs per frame or per request.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from dj.server.keys import STATION
from dj.stream import Station

METRICS_PATH = "/metrics"
REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


class StationCollector:
    def __init__(self, station: Station) -> None:
        self.station = station

    def collect(self) -> Iterator[Metric]:
        station = self.station
        stats = station.stats
        for instrument in (stats.sessions_opened, stats.sessions_closed, stats.connections,
                           stats.connections_ended, stats.bytes_sent, stats.render_wait,
                           stats.underruns, stats.underrun_seconds, stats.dead_air_seconds,
                           stats.actions, stats.lines_aired, stats.recommend_seconds):
            yield from instrument.collect()
        yield GaugeMetricFamily("dj_listeners", "Listeners streaming now (live sessions)",
                                value=station.sessions.streaming)
        yield GaugeMetricFamily("dj_sessions_resumable", "Sessions waiting for their listener"
                                " to come back within the resume window",
                                value=station.sessions.resumable)
        yield GaugeMetricFamily("dj_listener_peak", "Most listeners streaming at once since"
                                " the station started", value=stats.listener_peak)
        yield GaugeMetricFamily("dj_start_time_seconds", "When the station started (Unix time)",
                                value=stats.started_wall)
        writer = station.ledger_writer
        yield GaugeMetricFamily("dj_ledger_queue_depth", "Ledger events queued, not yet"
                                " committed", value=writer.depth)
        yield CounterMetricFamily("dj_ledger_written", "Ledger events committed",
                                  value=writer.written)
        yield CounterMetricFamily("dj_ledger_write_errors", "Ledger batch writes that failed"
                                  " (each is tried again)", value=writer.errors)
        failures = CounterMetricFamily("dj_failures", "Faults logged and worked around, by"
                                       " kind", labels=["kind"])
        for kind, count in sorted(dict(station.failures).items()):
            failures.add_metric([kind], count)
        yield failures
        yield from _narrator(station)
        yield CounterMetricFamily("dj_transition_cache_hits", "Transitions reused from the"
                                  " shared cache", value=station.pieces.hits)
        yield CounterMetricFamily("dj_transition_renders", "Transitions rendered (cache"
                                  " misses)", value=station.pieces.misses)
        yield GaugeMetricFamily("dj_track_bodies", "Encoded track bodies held in memory",
                                value=len(station.bodies))


def _narrator(station: Station) -> Iterator[Metric]:
    narrator = station.narrator
    hits = getattr(narrator, "cache_hits", 0)
    renders = getattr(narrator, "renders", 0)
    render_s = getattr(narrator, "render_s", 0.0)
    yield CounterMetricFamily("dj_tts_cache_hits", "Speech found already rendered in the voice"
                              " cache", value=hits)
    yield CounterMetricFamily("dj_tts_renders", "Speech synthesized (voice cache misses)",
                              value=renders)
    yield CounterMetricFamily("dj_tts_render_seconds", "Time spent synthesizing speech",
                              value=render_s)
    if narrator is None:
        return
    state = narrator.speech_state()
    yield GaugeMetricFamily("dj_tts_queue_depth", "Neural speech renders queued or running",
                            value=state["queue"])
    yield CounterMetricFamily("dj_tts_queue_refused", "Neural speech renders refused (queue"
                              " full; a stand-in airs)", value=state["refused"])
    for name, help_text, label, values in (
            ("dj_tts_engine_fallbacks", "Personas switched to espeak-ng, by the engine they"
             " could not use", "engine", state["engine_fallbacks"]),
            ("dj_lines_aired_by_engine", "Lines aired, by the engine heard", "engine",
             state["aired"]),
            ("dj_tts_stand_ins_aired", "Lines aired as a stand-in (their own render not ready),"
             " by variant", "variant", state["stand_ins_aired"])):
        family = CounterMetricFamily(name, help_text, labels=[label])
        for key, count in sorted(values.items()):
            family.add_metric([key], count)
        yield family


def registry_for(station: Station) -> CollectorRegistry:
    # auto_describe off: the collector's names are only known by collecting, and each app's
    # registry holds this one collector, so there is nothing to clash with
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StationCollector(station))
    return registry


async def metrics(request: web.Request) -> web.Response:
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": content_type,
                                            "Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    disable_created_metrics()  # no *_created series beside every counter: noise, not data
    app[REGISTRY] = registry_for(app[STATION])
    app.router.add_get(METRICS_PATH, metrics)
