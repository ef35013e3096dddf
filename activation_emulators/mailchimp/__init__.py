"""A faithful local Mailchimp Marketing API 3.0 emulator over real HTTP (tests, demo, --sandbox).

The official SDK (mailchimp-marketing) reaches it like this::

    from mailchimp_marketing import Client
    with MailchimpEmulator() as emu:
        list_id = emu.create_list("Newsletter")
        client = Client()
        client.set_config({"api_key": emu.api_key, "server": emu.dc})
        client.api_client.host = emu.url          # http://127.0.0.1:PORT/3.0
        client.lists.batch_list_members(list_id, {"members": [...], "update_existing": True})

Served: ping, account root; lists (list, get, create); batch subscribe/unsubscribe
(`POST /lists/{id}`, ≤ 500 members, per-member errors in a 200); merge fields (list, create);
members (list, add, get, PUT upsert with status_if_new, PATCH, DELETE = archive,
actions/delete-permanent); member tags (get, add/remove); static segments = tags (list,
create, get, batch add/remove ≤ 500 each way).

Mailchimp's behaviour: Basic auth with the API key as password (401 "API Key Missing" /
"API Key Invalid", also for a key of another data center); more than `connection_limit`
(10) simultaneous requests on the account → 429; every error as problem+json
(`type, title, status, detail, instance`); merge-field type checks; unsubscribed and cleaned
members refuse to be subscribed ("compliance state"); permanently deleted ones cannot be
re-imported. Differences: any address with a valid shape is accepted (Mailchimp also refuses
addresses it deems fake, e.g. at example.com); no double opt-in emails; no interests.

Faults: ``emu.faults`` (activation_emulators.faults). Set-up: ``create_list``,
``add_merge_field``, ``add_member``, ``set_status``, ``forget``. Inspection: ``lists``, ``members``, ``merge_fields``,
``tag_members``, ``request_log``, ``request_count``, ``throttled``, ``max_inflight``.

    python -m activation_emulators.mailchimp --port 8090 --list Newsletter
"""

from activation_emulators.mailchimp.server import LoggedRequest, MailchimpEmulator, problem_body
from activation_emulators.mailchimp.store import BATCH_LIMIT, subscriber_hash

__all__ = ["BATCH_LIMIT", "LoggedRequest", "MailchimpEmulator", "problem_body", "subscriber_hash"]
