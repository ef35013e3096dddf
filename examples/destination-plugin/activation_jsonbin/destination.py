"""POST each batch as {"sync": ..., "records": [{"op", "key", "fields"}, ...]}; a 2xx
acknowledges every row, another 4xx rejects them, 401/403 stop the sync. Retries, backoff
and secret redaction come from activation's HTTP client."""

from __future__ import annotations

from activation.destinations.base import Destination, DestinationError, DestinationReport, RowOp, RowResult, SyncTarget
from activation.destinations.http import HttpClient, RetryPolicy
from activation.project.secrets import resolve_env


class JsonBinDestination(Destination):
    type = "jsonbin"
    max_batch_size = 1000
    http: HttpClient | None = None

    def open(self, target: SyncTarget) -> None:
        token = resolve_env(self.spec.token) if self.spec.token else None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = HttpClient(retry=RetryPolicy(max_retries=self.spec.max_retries), headers=headers)

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        assert self.http is not None, "open() comes first"
        records = [{"op": op.kind, "key": op.key, "fields": op.values} for op in ops]
        response = self.http.request("POST", resolve_env(self.spec.url), json={"sync": target.sync, "records": records})
        if response.status_code in (401, 403):
            raise DestinationError(f"HTTP {response.status_code}: {self.http.describe(response)}", retryable=False)
        ok = 200 <= response.status_code < 300
        error = None if ok else f"HTTP {response.status_code}: {self.http.describe(response)}"
        return [RowResult(key=op.key, ok=ok, error=error) for op in ops]

    def report(self) -> DestinationReport:
        """The HTTP client's counters: run --json, history and the daemon's metrics show them."""
        h = self.http
        return DestinationReport(requests=h.requests, retries=h.retries, throttled=h.throttled) if h else DestinationReport()

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None
