"""A local Klaviyo API emulator over real HTTP (tests, --sandbox), written from Klaviyo's API
reference (developers.klaviyo.com, revision 2026-10-15) and the official SDK's source
(klaviyo-api 25.0.0), which reaches it unchanged::

    from klaviyo_api import KlaviyoAPI
    with KlaviyoEmulator(api_keys={"pk_test"}) as emu:
        client = KlaviyoAPI("pk_test", test_host=emu.url)
        client.Profiles.bulk_import_profiles({"data": {"type": "profile-bulk-import-job", ...}})

Served: `POST /api/profile-bulk-import-jobs` (≤ 10,000 profiles, ≤ 5 MB), `GET
/api/profile-bulk-import-jobs/{id}` and `…/{id}/import-errors` (cursor pages); `GET
/api/profiles` (`filter=equals|any(email|phone_number|external_id|id, …)`); `GET/POST
/api/lists`, `GET /api/lists/{id}`, `POST/DELETE /api/lists/{id}/relationships/profiles`
(≤ 1000 ids); `POST /api/profile-suppression-bulk-create-jobs` and `…-delete-jobs` (≤ 100
emails); `POST /api/data-privacy-deletion-jobs`; `GET /api/accounts`.

Klaviyo's behaviour: `Authorization: Klaviyo-API-Key <private key>` (401 `not_authenticated`
otherwise) and a `revision` header (400 without); errors as JSON:API documents (`{"errors":
[{id, status, code, title, detail, source: {pointer}}]}`); profiles upserted by identity
(email without case, then external_id, then phone_number), so a resent job changes nothing;
null clears an attribute or a property; per-profile validation (email and E.164 phone shapes,
an identifier present, 100 KB) reported as the job's import errors with the original payload,
the job's other profiles applied; a job is `queued`/`processing` for `polls_to_complete`
looks, then `complete`; an import naming a list adds its profiles to it; suppression creates
a missing profile and marks it USER_SUPPRESSED; unsuppression lifts only USER_SUPPRESSED (an
unsubscribe set with `suppress(email)` stays); per-endpoint tiers (XS 1/s 15/m, S 3/s 60/m,
M 10/s 150/m, L 75/s 700/m) in fixed burst and steady windows, 429 `throttled` with only
`Retry-After`, RateLimit-Limit/-Remaining/-Reset on other answers.

Differences: jobs, suppressions and deletions are applied when they complete here, at once
(Klaviyo runs them asynchronously: a deleted profile may be read back for a while); a job
shares one window with its polls (Klaviyo meters each endpoint); no consent/subscriptions,
events, segments, daily limits (create list: 150/d) or OAuth; list ids are short random ids;
Klaviyo's exact detail texts are not reproduced.

Faults: ``emu.faults`` (activation_emulators.faults). Set-up: ``create_list``, ``suppress``.
Inspection: ``profiles``, ``held``, ``suppressed``, ``lists``, ``list_members``,
``request_log``, ``request_count``, ``throttled``.

    python -m activation_emulators.klaviyo --port 8092 --api-key pk_test [--list Newsletter]
"""

from activation_emulators.klaviyo.server import KlaviyoEmulator, LoggedRequest

__all__ = ["KlaviyoEmulator", "LoggedRequest"]
