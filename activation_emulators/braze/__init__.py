"""A local Braze REST API over real HTTP (tests, --sandbox, `activation emulate`).

Served (written from Braze's public API reference):

- ``POST /users/track``: attributes objects (≤ 75 per call, else 400 "Max Input Length
  Exceeded") keyed by ``external_id``, or by ``email`` (an email-only profile); Braze profile
  fields and custom attributes (strings, numbers, booleans, ISO-8601 times, arrays of strings
  deduplicated and cut to 25, nested objects, ``{"inc"}`` / ``{"add"}`` / ``{"remove"}``);
  ``null`` removes an attribute; ``_update_existing_only: true`` never creates a user. Answers
  201 ``{"message": "success", "attributes_processed": n, "errors": [{"type", "input_array",
  "index"}]}``: an object without an identifier, with an invalid ``email`` or an array of
  non-strings is refused alone (the user is neither created nor updated).
- ``POST /users/delete``: one of ``external_ids`` / ``email_addresses`` / ``user_aliases`` /
  ``braze_ids``, ≤ 50 (else 400); 201 ``{"deleted": n, "message": "success"}``; unknown ids
  are not errors.
- ``GET /custom_attributes``: 50 per page, alphabetical, next page in the ``Link`` header;
  ``status`` Active or Blocklisted (``emu.blocklist(name)``: writes to it are dropped).

Braze's behaviour: ``Authorization: Bearer <REST API key>`` (401 ``{"message": "Invalid API
key"}`` otherwise); fatal errors as ``{"message", "errors"}``; /users/track limited to
``track_limit`` (3,000) requests per ``track_window`` (3 s) per workspace, every answer carrying
``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (UTC epoch seconds), a 429 beyond with no
Retry-After (an injected ``throttle`` fault answers the same way, its reset ``retry_after``
seconds away).

What differs from Braze: processing is synchronous (Braze queues /users/track and deletes
asynchronously: a read right after a write may not see it there); no events, purchases,
subscription groups, aliases or braze_ids are kept; no data-point billing; the wording of
the 401, 429 and per-object error messages is the emulator's own (Braze documents the shapes,
not every text); email validation is a simple shape check; other endpoints answer 404.

Faults: ``emu.faults`` (activation_emulators.faults). Inspection: ``profiles()``,
``email_users``, ``attribute_types``, ``request_log``, ``request_count(path)``, ``throttled``.

    python -m activation_emulators.braze --port 8095 --api-key KEY
"""

from activation_emulators.braze.server import DELETE_LIMIT, TRACK_LIMIT, BrazeEmulator, LoggedRequest

__all__ = ["DELETE_LIMIT", "TRACK_LIMIT", "BrazeEmulator", "LoggedRequest"]
