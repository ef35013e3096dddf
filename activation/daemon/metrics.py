"""The daemon's Prometheus metrics (one registry per daemon; scraped at /metrics).

Rows sent move batch by batch while a run is in progress; the rest is counted when a run
ends, from its `SyncResult` and the destination's report (requests, retries, 429s).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from activation.runner import SyncResult

_SYNC = ["sync", "destination"]


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.runs = Counter("activation_runs", "Runs finished, by status.", [*_SYNC, "status"], registry=r)
        self.rows_sent = Counter("activation_rows_sent", "Operations sent to the destination (counted per batch).", _SYNC, registry=r)
        self.rows_acknowledged = Counter("activation_rows_acknowledged", "Operations the destination acknowledged.", _SYNC, registry=r)
        self.rows_rejected = Counter(
            "activation_rows_rejected", "Rows rejected, before sending (plan) or by the destination.", [*_SYNC, "stage"], registry=r
        )
        self.duration = Histogram(
            "activation_run_duration_seconds",
            "Duration of a run.",
            _SYNC,
            registry=r,
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf")),
        )
        self.last_success = Gauge(
            "activation_last_success_timestamp_seconds", "When the sync last ended successfully (up to date or success).", _SYNC, registry=r
        )
        self.running = Gauge("activation_sync_running", "1 while this daemon runs the sync.", _SYNC, registry=r)
        self.failures = Gauge("activation_sync_consecutive_failures", "Failed runs in a row.", _SYNC, registry=r)
        self.api_requests = Counter(
            "activation_api_requests", "HTTP requests to the destination's API (retries included).", _SYNC, registry=r
        )
        self.api_retries = Counter("activation_api_retries", "API requests repeated after a transient failure.", _SYNC, registry=r)
        self.api_throttled = Counter("activation_api_throttled", "429 / rate-limit answers from the destination's API.", _SYNC, registry=r)
        self.skipped = Counter(
            "activation_slots_skipped",
            "Schedule slots not run here: held (another process runs it), served "
            "(another daemon ran this slot), backoff (after failures), paused (after a terminal failure, until a reload).",
            ["sync", "reason"],
            registry=r,
        )
        self.refreshes = Counter("activation_model_refreshes", "Models materialised by this daemon.", registry=r)
        self.cycles = Counter("activation_cycles", "Cycles (a set of due syncs) started.", registry=r)
        self.reloads = Counter("activation_config_reloads", "Re-reads of syncs.yaml, by result.", ["result"], registry=r)
        self.config_ok = Gauge(
            "activation_config_valid", "0 while the last re-read of syncs.yaml failed (the last good one runs).", registry=r
        )
        self.alerts = Counter("activation_alerts", "Alerts sent, by kind and result.", ["kind", "result"], registry=r)
        self.config_ok.set(1)

    def run_finished(self, destination: str, result: SyncResult) -> None:
        labels = (result.sync, destination)
        self.runs.labels(*labels, result.status).inc()
        self.duration.labels(*labels).observe(result.seconds)
        self.rows_acknowledged.labels(*labels).inc(result.acknowledged)
        self.rows_rejected.labels(*labels, "plan").inc(result.plan.counts.rejected)
        self.rows_rejected.labels(*labels, "destination").inc(result.rejected_by_destination)
        if result.status in ("up_to_date", "success"):
            self.last_success.labels(*labels).set_to_current_time()
        if (report := result.destination_report) is not None:
            self.api_requests.labels(*labels).inc(report.requests)
            self.api_retries.labels(*labels).inc(report.retries)
            self.api_throttled.labels(*labels).inc(report.throttled)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsProgress:
    """The runner's progress hook: counts each batch's operations as they are sent."""

    def __init__(self, metrics: Metrics, destination: str) -> None:
        self.metrics = metrics
        self.destination = destination
        self.sync = ""

    def start(self, sync: str, total: int) -> None:
        self.sync = sync

    def advance(self, n: int) -> None:
        self.metrics.rows_sent.labels(self.sync, self.destination).inc(n)

    def finish(self) -> None: ...
