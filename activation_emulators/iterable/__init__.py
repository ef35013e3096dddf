"""A local Iterable API emulator over real HTTP (tests, --sandbox), written from Iterable's
published OpenAPI document (api.iterable.com/api/docs) and its API reference.

    with IterableEmulator(api_keys={"KEY"}) as emu:
        httpx.post(f"{emu.url}/api/users/bulkUpdate", headers={"Api-Key": "KEY"},
                   json={"users": [{"email": "a@example.org", "dataFields": {"plan": "pro"}}]})

Served: `POST /api/users/bulkUpdate`; `GET /api/users/{email}`, `GET /api/users/byUserId/{userId}`;
`DELETE /api/users/{email}`, `DELETE /api/users/byUserId/{userId}`; `GET /api/users/getFields`;
`GET /api/lists`, `POST /api/lists` (create a static list); `POST /api/lists/subscribe`,
`POST /api/lists/unsubscribe`.

Iterable's behaviour: the `Api-Key` header (401 `{"code": "BadApiKey", "msg", "params"}`
without a known key); users keyed by email (without case) or by userId, as the project
identifies them (`identify_by`); upserts by that identity, so a resent request changes
nothing; a field's type is set by its first value (string, long, double, boolean, date,
object, arrays) and a value of another type fails that user (`failedUpdates.invalidDataEmails`);
malformed emails fail that user (`invalidEmails`); forgotten (GDPR) users cannot be written
(`forgottenEmails`); per-user failures in a 200 with `successCount`/`failCount`; unsubscribe
of an unknown user: `notFoundEmails`; the documented per-project rate limits (bulkUpdate 5/s,
user GET/DELETE and lists 100/s, getFields 3/s) answered 429 `RateLimitExceeded`; a body over
4 MB refused (400 `BatchTooLarge`).

Differences: deletes are applied at once (Iterable deletes asynchronously: a user may still
be read back for a while); a delete of an unknown user answers 404 `NotFound` (Iterable's
exact answer is unconfirmed); no Retry-After on 429 (Iterable documents none); dates are
recognised in Iterable's `yyyy-MM-dd HH:mm:ss ZZ` and `yyyy-MM-dd` forms only; no hybrid
projects, merges of nested objects, events, channels or message types; `createNewFields`
is taken as true unless `drop_new_fields` is set.

Faults: ``emu.faults`` (activation_emulators.faults). Set-up: ``create_list``, ``forget``.
Inspection: ``users``, ``identities``, ``list_members``, ``lists``, ``fields``, ``request_log``,
``request_count``, ``throttled``.

    python -m activation_emulators.iterable --port 8091 --api-key KEY [--list Newsletter]
"""

from activation_emulators.iterable.server import IterableEmulator, LoggedRequest

__all__ = ["IterableEmulator", "LoggedRequest"]
