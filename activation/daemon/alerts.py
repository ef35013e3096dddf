"""Alerts: a sync started failing (or recovered), or a run rejected too many rows.

Sent to a Slack incoming webhook (`{"text": …}`) and/or any URL (the `Alert` as JSON), from a
background thread so a slow receiver never holds a run up. Alerts fire on transitions (the
first failure of a streak, the recovery, crossing the rejected-row threshold), not on every
slot. Webhook URLs are secrets (Slack's carries its token in the path): messages name only
the host. Alerts carry counts and the run's (redacted) error, never rows.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from activation.daemon.logs import event
from activation.daemon.metrics import Metrics
from activation.destinations.base import DestinationError
from activation.destinations.http import HttpClient, RetryPolicy
from activation.project.secrets import redact, resolve_env
from activation.project.spec import AlertsSpec
from activation.runner import SyncResult

AlertKind = Literal["sync_failed", "sync_recovered", "rejected_rate"]
FAILED = ("failed", "blocked")


class Alert(BaseModel):
    kind: AlertKind
    sync: str
    destination: str
    status: str = Field(description="The run's status, or `error` when the sync could not run at all.")
    run_id: str | None = None
    error: str | None = None
    failures: int = Field(0, description="Failed runs in a row.")
    paused: bool = Field(
        False,
        description="The failure will not pass by retrying (credentials, permissions): the daemon "
        "stopped running the sync until its configuration is reloaded.",
    )
    rejected: int = 0
    handled: int = Field(0, description="Rows sent plus rows rejected before sending.")
    rejected_rate: float | None = None
    threshold: float | None = None
    daemon: str
    at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    def text(self) -> str:
        """One line for Slack."""
        head = {
            "sync_failed": ":red_circle: sync {s} failed",
            "sync_recovered": ":large_green_circle: sync {s} recovered",
            "rejected_rate": ":warning: sync {s} rejected {r:.1%} of its rows",
        }[self.kind]
        line = head.format(s=self.sync, r=self.rejected_rate or 0.0) + f" (to {self.destination}, run {self.run_id or '-'}"
        line += f", {self.failures} failures in a row)" if self.kind == "sync_failed" else ")"
        if self.paused:
            line += "; paused until the configuration is reloaded"
        if self.kind == "rejected_rate":
            line += f": {self.rejected} of {self.handled}, threshold {self.threshold:.1%}"
        return line + (f": {self.error}" if self.error and self.kind == "sync_failed" else "")


class _Target:
    def __init__(self, kind: str, url: str, headers: dict[str, str], timeout: float) -> None:
        self.kind = kind
        self.url = resolve_env(url)  # registers ${ENV} values with the redactor
        redact.add(self.url)  # a literal URL is a secret too (Slack's token is in the path)
        self.host = urlsplit(self.url).hostname or "?"
        self.headers = {k: resolve_env(v) for k, v in headers.items()}
        self.client = HttpClient(timeout=timeout, retry=RetryPolicy(max_retries=2, base_delay=0.5, max_delay=5.0), headers=self.headers)

    def send(self, alert: Alert) -> None:
        body: Any = {"text": alert.text()} if self.kind == "slack" else alert.model_dump(mode="json")
        response = self.client.request("POST", self.url, json=body, display_url=f"{self.kind} webhook at {self.host}")
        if not 200 <= response.status_code < 300:
            raise DestinationError(f"{self.kind} webhook at {self.host} answered HTTP {response.status_code}")


class Alerter:
    """Decides which runs deserve an alert and sends them. `spec` may use ${ENV}."""

    def __init__(self, spec: AlertsSpec, owner: str, metrics: Metrics) -> None:
        self.spec = spec
        self.owner = owner
        self.metrics = metrics
        self.targets = [
            _Target(kind, url, headers, spec.timeout)
            for kind, url, headers in (("slack", spec.slack_webhook_url, {}), ("webhook", spec.webhook_url, spec.webhook_headers))
            if url
        ]
        self._failing: set[str] = set()
        self._over: set[str] = set()
        self._queue: queue.Queue[Alert | None] = queue.Queue()
        self._thread = threading.Thread(target=self._deliver, name="alerts", daemon=True)
        if self.targets:
            self._thread.start()

    def inherit(self, other: Alerter) -> None:
        """Carry which syncs are failing over a reload, so a reload does not re-alert."""
        self._failing, self._over = set(other._failing), set(other._over)

    def observe(
        self, sync: str, destination: str, result: SyncResult | None, *, error: str | None = None, failures: int = 0, paused: bool = False
    ) -> None:
        """After each run (`result`), or a sync that could not even start (`error`)."""
        status = result.status if result is not None else "error"
        base = {
            "sync": sync,
            "destination": destination,
            "status": status,
            "daemon": self.owner,
            "run_id": result.run_id if result else None,
            "failures": failures,
        }
        if status == "interrupted":
            return
        if status in FAILED or result is None:
            if sync not in self._failing and self.spec.on_failure:
                self._emit(Alert(kind="sync_failed", error=_short(error or (result.error if result else None)), paused=paused, **base))
            self._failing.add(sync)
            return
        if sync in self._failing:
            self._failing.discard(sync)
            if self.spec.on_failure:
                self._emit(Alert(kind="sync_recovered", **base))
        threshold = self.spec.rejected_share
        rejected = result.rejected_by_destination + result.plan.counts.rejected
        handled = result.sent + result.plan.counts.rejected
        if threshold is None or not handled:
            return
        rate = rejected / handled
        if rate > threshold and sync not in self._over:
            self._over.add(sync)
            self._emit(Alert(kind="rejected_rate", rejected=rejected, handled=handled, rejected_rate=rate, threshold=threshold, **base))
        elif rate <= threshold:
            self._over.discard(sync)

    def _emit(self, alert: Alert) -> None:
        if not self.targets:
            return
        event(logging.WARNING, f"alert: {alert.kind}", alert=alert.kind)
        self._queue.put(alert)

    def _deliver(self) -> None:
        while (alert := self._queue.get()) is not None:
            for target in self.targets:
                try:
                    target.send(alert)
                    self.metrics.alerts.labels(alert.kind, "sent").inc()
                except DestinationError as e:
                    self.metrics.alerts.labels(alert.kind, "error").inc()
                    event(logging.WARNING, "could not send an alert", alert=alert.kind, error=redact(str(e)))
            self._queue.task_done()

    def close(self, timeout: float) -> None:
        """Send what is queued (for at most `timeout` seconds), then stop."""
        if not self._thread.is_alive():
            return
        self._queue.put(None)
        deadline = time.monotonic() + timeout
        self._thread.join(max(0.0, deadline - time.monotonic()))
        for target in self.targets:
            target.client.close()


def _short(text: str | None, limit: int = 500) -> str | None:
    if text is None:
        return None
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
