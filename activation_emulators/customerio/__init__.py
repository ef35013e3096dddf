"""A local Customer.io Track API emulator over real HTTP (tests, --sandbox), written from
Customer.io's published Track API reference (OpenAPI "Journeys Track API", docs.customer.io)
and the official Python SDK's source (customerio 3.2).

    with CustomerioEmulator(credentials={("SITE", "KEY")}) as emu:
        CustomerIO("SITE", "KEY", host="127.0.0.1", port=emu.port)  # the SDK speaks https: route it to emu.url

Served: `POST /api/v2/batch` (person `identify` and `delete`), `POST /api/v2/entity` (one
operation); `PUT` and `DELETE /api/v1/customers/{identifier}` (the SDK's identify/delete);
`POST /api/v1/segments/{segment_id}/add_customers` and `/remove_customers` (`{"ids": [...]}`,
`?id_type=id|email`); `GET /api/v1/accounts/region`.

Customer.io's behaviour: HTTP Basic auth with the site id and Track API key (401 `{"meta":
{"error": ...}}` otherwise); people keyed by the workspace's identifier (`identify_by`: `id`,
compared exactly, or `email`, without case); identify upserts (attributes merged, `null` or
`""` removes one), so a resent request changes nothing; delete of an unknown person succeeds;
a deleted person leaves every segment. Per-operation errors in a 207 `{"errors": [{"batch_index",
"reason", "field", "message"}]}`, the other operations applied; the documented limits checked
per operation (identifier ≤ 150 bytes, a valid email in email workspaces, attribute names
≤ 150 bytes, values ≤ 1000 bytes, ≤ 300 attributes); a batch over 500 KB (an entity over
32 KB) refused whole with 400. Manual segments: unknown segment 404, a data-driven one
refused, ≤ 1000 ids per call, ids of nobody ignored. The fair-use limit (100 requests/s per
workspace, v1 and v2 together) answered 429.

Differences: Customer.io processes Track calls asynchronously (a 200 means queued; the
emulator applies at once) and fair use is not a hard limit there; the 429 and whole-request
error bodies, what `add_customers` does with ids of nobody, and the exact `reason`/`message`
texts are unconfirmed (Customer.io documents none of them); no Retry-After on the emulator's
own 429 (none documented); no events, devices, objects, relationships, merges, suppression,
`cio_id` references or workspaces identifying by both id and email; no EU redirect.

Faults: ``emu.faults`` (activation_emulators.faults). Set-up: ``create_segment``.
Inspection: ``people``, ``identities``, ``members``, ``segments``, ``request_log``,
``request_count``, ``throttled``.

    python -m activation_emulators.customerio --port 8093 --site-id SITE --api-key KEY [--identify-by email] [--segment VIPs]
"""

from activation_emulators.customerio.server import CustomerioEmulator, LoggedRequest

__all__ = ["CustomerioEmulator", "LoggedRequest"]
