"""A local Intercom REST API over real HTTP (tests, --sandbox, `activation emulate`), serving
what the official python-intercom SDK calls.

Served (written from Intercom's OpenAPI descriptions, version 2.14, and the SDK's source):

- ``POST /contacts`` (create a user or lead), ``PUT /contacts/{id}``, ``GET /contacts/{id}``,
  ``DELETE /contacts/{id}``, ``POST /contacts/{id}/archive`` and ``/unarchive``,
  ``POST /contacts/search`` (``=``, ``!=``, ``IN`` on any contact field, ``AND``/``OR``;
  ``per_page`` ≤ 150, ``starting_after`` cursors; archived contacts are not found);
- ``POST /contacts/{id}/tags`` ``{"id"}`` and ``DELETE /contacts/{id}/tags/{tag_id}``;
  ``GET /tags``; ``POST /tags`` ``{"name"}`` (creates the tag or answers the existing one;
  ``users: [{"id"}]`` tags those contacts);
- ``POST /companies`` (create or update by ``company_id``), ``GET /companies?company_id=``,
  ``DELETE /companies/{id}``;
- ``GET /data_attributes?model=contact|company`` (the standard ones and the custom ones made
  with ``emu.add_attribute(model, name, data_type)``).

Intercom's behaviour: ``Authorization: Bearer <token>`` (401 ``error.list`` "unauthorized" /
"Access Token Invalid" otherwise); every error as ``{"type": "error.list", "request_id",
"errors": [{"code", "message"}]}``; an ``Intercom-Version`` header naming no version is a 400;
a create that would duplicate a contact (same external_id; or, for a user, same email) is a
409 "A contact matching those details already exists with id=…" ("An archived contact …" when
that one is archived), while leads may share an email; writing a custom attribute that is not a
data attribute, or of another type, is a 400; an invalid email is a 400; the rate limit
(``rate_limit`` calls a minute, 10,000 by default, counted in 10-second windows of a sixth)
with ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (UNIX seconds) on every answer, and a
429 beyond; ``search_lag`` seconds during which a new contact is invisible to search (Intercom
documents such a delay).

What differs from Intercom: only the fields above are kept (no conversations, events, notes,
segments, subscriptions, companies attached to contacts, visitors); a company is listed even
with no user attached (Intercom shows it only then); the exact wording of the 400 messages for
an invalid email or an unknown or mistyped custom attribute is the emulator's (Intercom
documents the shape, not every text); per-workspace limits (25,000 a minute shared by apps)
are not modelled; merges are not served; ids are the emulator's.

Faults: ``emu.faults`` (activation_emulators.faults); a create is offered to them as
``POST /contacts:create`` (so ``match="POST /contacts:create"`` strikes creates alone, and
``match="POST /contacts"`` creates and searches). Inspection: ``live_contacts()``,
``archived_contacts()``, ``companies``, ``tagged(name)``, ``versions``, ``request_log``,
``request_count(path, method)``, ``throttled``.

    python -m activation_emulators.intercom --port 8096 --token TOKEN
"""

from activation_emulators.intercom.server import IntercomEmulator, LoggedRequest

__all__ = ["IntercomEmulator", "LoggedRequest"]
