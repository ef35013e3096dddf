"""Request and reply values shared by the emulator's route handlers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    method: str
    path: str  # percent-encoded, without the query string
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        """The JSON body; raises ValueError when it is not JSON."""
        return json.loads(self.body or b"null")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, obj: Any) -> Reply:
    return Reply(status, json.dumps(obj).encode())


def error_reply(status: int, code: str, message: str, fields: list[str] | None = None) -> Reply:
    """The REST API's error body: a JSON array of ``{message, errorCode[, fields]}``."""
    err: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        err["fields"] = fields
    return json_reply(status, [err])


def not_found() -> Reply:
    return error_reply(404, "NOT_FOUND", "The requested resource does not exist")


def no_content() -> Reply:
    return Reply(204, b"", "")
