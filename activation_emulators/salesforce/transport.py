"""A `requests.Session` that routes Salesforce hosts to the local emulator over plain HTTP.

simple-salesforce builds every URL as ``https://{instance}/...`` (and logs in at
``https://{domain}.salesforce.com``), so it cannot be pointed at ``http://127.0.0.1:PORT``
directly. The adapter below rewrites those URLs to the emulator, keeps the original `Host`
header (the emulator logs it), and puts the original URL back on the response so SDK error
messages show the Salesforce URL. Any other host is refused with a ConnectionError, so a test
can never reach the real network by accident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    from .emulator import SalesforceEmulator

ROUTED_SUFFIXES = (".salesforce.com", ".force.com", ".salesforce-setup.com")


class EmulatorAdapter(HTTPAdapter):
    """Sends Salesforce-host requests to ``http://{host}:{port}``; refuses everything else."""

    def __init__(self, host: str, port: int, instance: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host, self.port, self.instance = host, port, instance.lower()

    def routes(self, hostname: str, port: int | None) -> bool:
        if hostname in (self.host, "localhost", "127.0.0.1") and port == self.port:
            return True
        return hostname == self.instance or hostname == "salesforce.com" or hostname.endswith(ROUTED_SUFFIXES)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        hostname = (parts.hostname or "").lower()
        if not self.routes(hostname, parts.port):
            raise requests.exceptions.ConnectionError(
                f"{hostname} is not routed to the Salesforce emulator (refusing real network)", request=request
            )
        routed = request.copy()
        routed.url = urlunsplit(("http", f"{self.host}:{self.port}", parts.path, parts.query, ""))
        routed.headers["Host"] = parts.netloc  # urllib3 sends this instead of 127.0.0.1:PORT
        kwargs["proxies"] = {}  # never through an environment proxy
        response = super().send(routed, **kwargs)
        response.url, response.request = request.url or "", request
        return response


def emulator_session(target: SalesforceEmulator | str, *, instance: str | None = None, max_retries: Any = 0) -> requests.Session:
    """A session for ``Salesforce(..., session=...)`` that talks to the emulator.

    `target` is a running `SalesforceEmulator`, or the URL of one started with
    ``python -m activation_emulators.salesforce`` (then pass its `instance` if not the
    default). `max_retries` goes to the HTTPAdapter (an int or a `urllib3.Retry`).
    """
    if isinstance(target, str):
        parts = urlsplit(target)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        inst = instance or "emulated.my.salesforce.com"
    else:
        host, port, inst = target.host, target.port, instance or target.instance
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc credentials from the environment
    adapter = EmulatorAdapter(host, port, inst, max_retries=max_retries)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
