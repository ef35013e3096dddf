"""Login endpoints of the emulator: the SOAP partner `login` and the OAuth 2.0 token endpoint.

simple-salesforce logs in with username/password/security_token by POSTing a SOAP envelope to
``https://{domain}.salesforce.com/services/Soap/u/{version}`` and reads `sessionId` and
`serverUrl` (whose host becomes the instance). JWT bearer, username-password OAuth and
client-credentials flows POST a form to ``/services/oauth2/token`` and read `access_token` and
`instance_url`. Both answer with a fresh session token that the REST API then accepts.

JWT assertions are checked for shape and claims (`iss`, `sub`, `exp`), not signatures: the
emulator has no connected app certificate to verify against.
"""

from __future__ import annotations

import base64
import json
import time
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from .wire import Reply, Request, json_reply

if TYPE_CHECKING:
    from .emulator import SalesforceEmulator

_SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_PARTNER_NS = "urn:partner.soap.sforce.com"


def _soap_fault(code: str, message: str) -> Reply:
    # A real login fault is an HTTP 500 whose detail carries sf:exceptionCode/exceptionMessage,
    # which simple-salesforce turns into SalesforceAuthenticationFailed(code, message).
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{_SOAP_NS}" xmlns:sf="urn:fault.partner.soap.sforce.com"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>sf:{code}</faultcode><faultstring>{code}: {escape(message)}</faultstring>"
        '<detail><sf:LoginFault xsi:type="sf:LoginFault">'
        f"<sf:exceptionCode>{code}</sf:exceptionCode>"
        f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage>"
        "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return Reply(500, body.encode(), "text/xml;charset=UTF-8")


def soap_login(emu: SalesforceEmulator, req: Request, version: str) -> Reply:
    try:
        root = ET.fromstring(req.body)
    except ET.ParseError:
        return _soap_fault("INVALID_LOGIN", "Invalid request: the body is not XML")
    username = root.findtext(f".//{{{_PARTNER_NS}}}username") or ""
    password = root.findtext(f".//{{{_PARTNER_NS}}}password") or ""  # password + security token
    user = emu.users.get(username)
    if user is None or password != user[0] + user[1]:
        return _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
    token = emu.new_session()
    base = f"https://{emu.instance}/services/Soap"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{_SOAP_NS}" xmlns="{_PARTNER_NS}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>'
        f"<metadataServerUrl>{base}/m/{version}/{emu.org_id}</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
        f"<serverUrl>{base}/u/{version}/{emu.org_id}</serverUrl>"
        f"<sessionId>{escape(token)}</sessionId><userId>{emu.user_id}</userId>"
        f"<userInfo><organizationId>{emu.org_id}</organizationId>"
        f"<organizationName>Emulated Org</organizationName><userEmail>{escape(username)}</userEmail>"
        f"<userId>{emu.user_id}</userId><userName>{escape(username)}</userName></userInfo>"
        "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
    )
    return Reply(200, body.encode(), "text/xml;charset=UTF-8")


def _oauth_error(error: str, description: str, status: int = 400) -> Reply:
    return json_reply(status, {"error": error, "error_description": description})


def _jwt_claims(assertion: str) -> dict[str, Any] | None:
    """The payload of a well-formed JWT (header.payload.signature, base64url JSON), else None."""
    parts = assertion.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        header, payload = (json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2])
    except ValueError:
        return None
    if not isinstance(header, dict) or "alg" not in header or not isinstance(payload, dict):
        return None
    return payload


def oauth_token(emu: SalesforceEmulator, req: Request) -> Reply:
    form = {k: v[0] for k, v in parse_qs(req.text).items()}
    grant = form.get("grant_type", "")
    if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
        claims = _jwt_claims(form.get("assertion", ""))
        if claims is None:
            return _oauth_error("invalid_grant", "invalid assertion")
        try:
            expired = float(claims.get("exp", 0)) < time.time()
        except (TypeError, ValueError):
            expired = True
        if expired:
            return _oauth_error("invalid_grant", "expired assertion")
        if emu.connected_apps and claims.get("iss") not in emu.connected_apps:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if claims.get("sub") not in emu.users:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        scope = "api"
    elif grant == "password":
        if emu.connected_apps.get(form.get("client_id", "")) != form.get("client_secret"):
            return _oauth_error("invalid_client", "invalid client credentials")
        user = emu.users.get(form.get("username", ""))
        if user is None or form.get("password") not in (user[0], user[0] + user[1]):
            return _oauth_error("invalid_grant", "authentication failure")
        scope = "api"
    elif grant == "client_credentials":
        auth = req.headers.get("authorization", "")
        try:
            key, _, secret = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        except ValueError:
            key, secret = "", ""
        if not key or emu.connected_apps.get(key) != secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        scope = "api"
    else:
        return _oauth_error("unsupported_grant_type", "grant type not supported")
    return json_reply(
        200,
        {
            "access_token": emu.new_session(),
            "instance_url": f"https://{emu.instance}",
            "id": f"https://login.salesforce.com/id/{emu.org_id}/{emu.user_id}",
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "scope": scope,
            "signature": base64.b64encode(b"emulated-signature").decode(),
        },
    )
