"""A local Zendesk Support API (v2) emulator over real HTTP (tests, demo, --sandbox).

The official SDK (zenpy) reaches it through the destination's `base_url` (see
`activation.destinations.zendesk.api`): every request goes to ``emu.url`` + ``/api/v2/…``.

Served: ``GET users/me`` (the credential check); ``GET user_fields``, ``GET organization_fields``;
``POST users/create_or_update_many`` (≤ 100 users, matched by email or external_id, a
background job); ``DELETE users/destroy_many?ids=|external_ids=`` (≤ 100, a job: users are
soft-deleted, their email and external_id freed); ``GET users/search?query=email:…`` and
``?external_id=…``; ``PUT|POST|DELETE users/{id}/tags`` (add, set, remove);
``POST organizations/create_or_update`` (one organization, by id or external_id: 201 created
/ 200 updated, 422 RecordInvalid for a blank or taken name); ``DELETE
organizations/destroy_many?ids=|external_ids=`` (a job); ``GET job_statuses/{id}``.

Zendesk's behaviour: Basic auth ``{email}/token:{api_token}`` or an OAuth Bearer token (401
``{"error": "Couldn't authenticate you"}``); errors as ``{"error", "description"[, "details"]}``;
more than 100 items → 400 TooManyValues; a job answers ``queued`` and is ``completed`` after
`job_polls` polls, its ``results`` in request order: ``{"id", "status": "Created"|"Updated",
"email", "external_id"}`` or ``{"index", "error", "details", "status": "Failed"}`` (an email
that is not properly formatted, a new user without a name, a custom field value of the wrong
type); more than `job_limit` (30) jobs queued or running → 429 TooManyJobs with Retry-After;
emails and external_ids compared without case; tags lower-cased; unknown custom field keys
ignored. Differences: the work of a job is done when it is queued (so a lost answer leaves it
applied, as it may at Zendesk) and reported at its polls; no per-minute request quota unless a
fault injects 429s; destroy_many answers ``Failed``/RecordNotFound per unknown id (not
verified against Zendesk); no identities API, no user merge, no organization memberships.

Faults: ``emu.faults`` (activation_emulators.faults). Set-up: ``add_user_field``,
``add_organization_field``. Inspection: ``people()``, ``organizations()``, ``tagged(tag)``,
``deleted_users``, ``request_log``, ``request_count``, ``counts()``.

    python -m activation_emulators.zendesk --port 8093 --token TOKEN --user-field plan
"""

from activation_emulators.zendesk.server import BATCH_LIMIT, JOB_LIMIT, LoggedRequest, ZendeskEmulator

__all__ = ["BATCH_LIMIT", "JOB_LIMIT", "LoggedRequest", "ZendeskEmulator"]
