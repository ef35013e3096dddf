"""BigQuery's error shape: one exception type carries what the REST API answers.

The real service answers a failed call with ``{"error": {"code", "message", "errors":
[{"message", "domain", "reason", "location"?}], "status"}}``; a failed job carries the same
``{"reason", "message", "location"?}`` in ``status.errorResult``. google-cloud-bigquery maps
the HTTP code (or, for a job, the reason) onto its exceptions (NotFound, BadRequest, ...).
"""

from __future__ import annotations

from typing import Any

LOCATION = "US"  # the one location every dataset and job of the emulator is in

_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 500: "INTERNAL"}


class BigQueryError(Exception):
    """An error as BigQuery reports it: HTTP code, reason (``invalidQuery``, ``notFound``,
    ``duplicate``, ``bytesBilledLimitExceeded``...), message, and optionally a location."""

    def __init__(self, code: int, reason: str, message: str, location: str | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.location = code, reason, message, location

    def error_proto(self) -> dict[str, Any]:
        """The ``ErrorProto`` of a job's ``status.errorResult`` / ``errors``."""
        proto: dict[str, Any] = {"reason": self.reason, "message": self.message}
        if self.location is not None:
            proto["location"] = self.location
        return proto

    def body(self) -> dict[str, Any]:
        """The HTTP error body."""
        error = {"domain": "global", **self.error_proto()}
        return {"error": {"code": self.code, "message": self.message, "errors": [error], "status": _STATUS.get(self.code, "UNKNOWN")}}


def invalid_query(message: str) -> BigQueryError:
    return BigQueryError(400, "invalidQuery", message, "query")


def invalid(message: str) -> BigQueryError:
    return BigQueryError(400, "invalid", message)


def not_found(message: str) -> BigQueryError:
    """``message`` without the "Not found: " prefix, e.g. ``Table p:d.t``."""
    return BigQueryError(404, "notFound", f"Not found: {message}")


def table_not_found(project: str, dataset: str, table: str) -> BigQueryError:
    return not_found(f"Table {project}:{dataset}.{table} was not found in location {LOCATION}")


def dataset_not_found(project: str, dataset: str) -> BigQueryError:
    return not_found(f"Dataset {project}:{dataset} was not found in location {LOCATION}")


def duplicate(message: str) -> BigQueryError:
    return BigQueryError(409, "duplicate", f"Already Exists: {message}")
