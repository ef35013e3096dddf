"""What each destination holds, by its own identity, and which rows map to it.

A destination keeps records under an identity (a normalised email, each hashed identifier of
an ad member, an external id, or the row key itself), not under the sync's key: several rows
can map to one record, and a row's identity can change. The state keeps two tables for it:

- `claims`: the identities each delivered (or possibly delivered) row maps to;
- `releases`: identities the destination holds or may hold that a row stopped claiming.

A run first writes rows (claims follow each acknowledged row, in the same transaction), then
*releases*: every released identity that no row claims any more is removed at the
destination (mirror, audience) or forgotten (other modes). So a record is removed only when
no live row maps to it, whatever order rows left or changed in, and whatever a crash
interrupted: a release entry goes only once the destination acknowledged the removal.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from activation.state.bulk import Same, delete_keys, insert_columns, select_keys
from activation.state.journal import Journaled, values_json

if TYPE_CHECKING:
    from activation.state.store import StateStore

UNKNOWN_HASH = "?"  # matches no real row hash: "delivered, content unknown"
#: Joined a row key and a run id in the delivered rows of releases before identities were kept.
LEGACY_GHOST = "\x1e"


class IdentityRules(Protocol):
    """How one sync's rows map to identities at its destination (built by the runner)."""

    @property
    def version(self) -> str: ...  # read-only: the implementation derives it

    def identify(self, key: str, values: dict[str, Any]) -> tuple[str, ...]: ...

    def removal(self, identity: str, values: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Release:
    """An identity a row stopped claiming: removed at the end of the run if none claims it."""

    identity: str
    row_key: str | None
    dest_id: str | None
    values_json: str  # what a remove op of it carries

    @staticmethod
    def of(
        rules: IdentityRules, identities: Sequence[str], row_key: str | None, dest_id: str | None, values: dict[str, Any]
    ) -> list[Release]:
        return [Release(i, row_key, dest_id, values_json(rules.removal(i, values))) for i in identities]


@dataclass(frozen=True, slots=True)
class Releasable:
    """A released identity no row claims: what the destination is asked to remove."""

    identity: str
    row_key: str | None
    dest_id: str | None
    values: dict[str, Any]


def replace_claims(store: StateStore, c: Connection, sync: str, clear: Sequence[str], claims: Sequence[tuple[str, str]]) -> None:
    """Drop the claims of rows `clear`, then record `claims` (row key, identity)."""
    t = store.t["claims"]
    delete_keys(c, store.dialect, store.relation("claims"), t, sync, list(clear))
    if claims:
        insert_columns(
            c,
            store.dialect,
            store.relation("claims"),
            t,
            {"sync_name": Same(sync), "row_key": [k for k, _ in claims], "identity": [i for _, i in claims]},
        )


def add_releases(store: StateStore, c: Connection, sync: str, releases: Sequence[Release], now: datetime) -> None:
    if releases:
        insert_columns(
            c,
            store.dialect,
            store.relation("releases"),
            store.t["releases"],
            {
                "sync_name": Same(sync),
                "identity": [r.identity for r in releases],
                "row_key": [r.row_key for r in releases],
                "dest_id": [r.dest_id for r in releases],
                "row_values": [r.values_json for r in releases],
                "created_at": Same(now),
            },
        )


def drop_releases(store: StateStore, c: Connection, sync: str, identities: Sequence[str]) -> None:
    """Forget released identities (the destination removed them, or they need no removal)."""
    delete_keys(c, store.dialect, store.relation("releases"), store.t["releases"], sync, list(identities), column="identity")


def drop_claimed_releases(store: StateStore, sync: str, keep: Sequence[str] = ()) -> int:
    """Forget the released identities a row claims again: the destination must keep them
    (but `keep`: their record is still to be rewritten, see `shared_left`)."""
    r, cl = store.relation("releases"), store.relation("claims")
    with store.engine.begin() as c:
        if keep:
            claimed = [
                i
                for (i,) in c.execute(
                    sa.text(
                        f"SELECT DISTINCT identity FROM {r} WHERE sync_name = :s "
                        f"AND identity IN (SELECT identity FROM {cl} WHERE sync_name = :s)"
                    ),
                    {"s": sync},
                )
            ]
            gone = sorted(set(claimed) - set(keep))
            delete_keys(c, store.dialect, r, store.t["releases"], sync, gone, column="identity")
            return len(gone)
        result = c.execute(
            sa.text(f"DELETE FROM {r} WHERE sync_name = :s AND identity IN (SELECT identity FROM {cl} WHERE sync_name = :s)"), {"s": sync}
        )
        return int(result.rowcount or 0)


@dataclass(frozen=True, slots=True)
class SharedRecord:
    """A record a row stopped mapping to while another row still does: it may hold the values
    of the row that went, so it is written again with the values delivered for `row_key`."""

    identity: str
    row_key: str
    dest_id: str | None
    values: dict[str, Any]


def shared_left(store: StateStore, sync: str) -> list[SharedRecord]:
    """Released identities that a row other than the one that released them still claims
    (rows sharing a record under identity_conflicts: merge, one of which left or moved away),
    each with the smallest claiming row's delivered values."""
    if store.version() < 5:
        return []
    r, cl = store.relation("releases"), store.relation("claims")
    with store.engine.connect() as c:
        picks = {
            identity: key
            for identity, key in c.execute(
                sa.text(
                    f"SELECT c.identity, MIN(c.row_key) FROM {cl} c WHERE c.sync_name = :s AND c.identity IN ("
                    f"SELECT r.identity FROM {r} r WHERE r.sync_name = :s AND (r.row_key IS NULL OR NOT EXISTS ("
                    f"SELECT 1 FROM {cl} o WHERE o.sync_name = :s AND o.identity = r.identity AND o.row_key = r.row_key))) "
                    f"GROUP BY c.identity"
                ),
                {"s": sync},
            )
        }
        if not picks:
            return []
        delivered = {
            k: (v, i)
            for k, v, i in select_keys(
                c,
                store.dialect,
                store.relation("delivered"),
                store.t["delivered"],
                sync,
                sorted(set(picks.values())),
                ("row_key", "row_values", "dest_id"),
            )
        }
    return [
        SharedRecord(identity, key, delivered[key][1], json.loads(delivered[key][0]))
        for identity, key in sorted(picks.items())
        if key in delivered
    ]


def releasable(store: StateStore, sync: str, batch: int = 2000) -> Generator[list[Releasable], None, None]:  # (callers close it early)
    """The released identities no row claims, one entry each (the latest), in batches."""
    if store.version() < 5:
        return
    r, cl = store.relation("releases"), store.relation("claims")
    sql = (
        f"SELECT r.identity, r.row_key, r.dest_id, r.row_values, r.created_at FROM {r} r WHERE r.sync_name = :s "
        f"AND NOT EXISTS (SELECT 1 FROM {cl} c WHERE c.sync_name = :s AND c.identity = r.identity) "
        f"ORDER BY r.identity, r.created_at"
    )
    with store.engine.connect() as c:
        result = c.execution_options(stream_results=True, yield_per=batch).execute(sa.text(sql), {"s": sync})
        out: dict[str, Releasable] = {}
        for rows in result.partitions(batch):
            for identity, key, dest_id, values, _ in rows:
                prior = out.get(identity)
                # several entries of one identity: the latest wins, but a known record id is kept
                out[identity] = Releasable(identity, key, dest_id or (prior.dest_id if prior else None), json.loads(values))
            if len(out) >= batch:
                # an identity's entries are adjacent (ordered): hold back the last one, it may go on
                last = next(reversed(out))
                held = out.pop(last)
                yield list(out.values())
                out = {last: held}
        if out:
            yield list(out.values())


def pending_releases(store: StateStore, sync: str) -> int:
    """How many distinct identities wait to be released (claimed or not)."""
    if store.version() < 5:
        return 0
    with store.engine.connect() as c:
        t = store.t["releases"]
        return int(c.execute(sa.select(sa.func.count(sa.distinct(t.c.identity))).where(t.c.sync_name == sync)).scalar() or 0)


def claimants(store: StateStore, sync: str, identities: Sequence[str]) -> dict[str, set[str]]:
    """identity -> the rows claiming it, for `identities`."""
    found: dict[str, set[str]] = {}
    if not identities or store.version() < 5:
        return found
    with store.engine.connect() as c:
        for key, identity in select_keys(
            c,
            store.dialect,
            store.relation("claims"),
            store.t["claims"],
            sync,
            list(dict.fromkeys(identities)),
            ("row_key", "identity"),
            column="identity",
        ):
            found.setdefault(identity, set()).add(key)
    return found


def released(store: StateStore, sync: str, identities: Sequence[str]) -> dict[str, set[str | None]]:
    """Which of `identities` wait in the releases (the destination holds or may hold them),
    each with the rows that released it."""
    found: dict[str, set[str | None]] = {}
    if not identities or store.version() < 5:
        return found
    with store.engine.connect() as c:
        for i, key in select_keys(
            c,
            store.dialect,
            store.relation("releases"),
            store.t["releases"],
            sync,
            list(dict.fromkeys(identities)),
            ("identity", "row_key"),
            column="identity",
        ):
            found.setdefault(i, set()).add(key)
    return found


def recover(store: StateStore, c: Connection, sync: str, rows: list[Journaled], rules: IdentityRules, now: datetime) -> None:
    """Fold rows a dead run left in flight back in as *possibly* delivered, by identity.

    The destination may hold each row under the identities it was sent with (journaled with
    it). The row is kept delivered with an impossible hash (resent next run while it is in the
    model, released when it leaves), claiming those identities; identities it claimed before
    and was not sent under become releases: the destination may still hold them too, and the
    end of the next run removes them unless some row claims them again.
    """
    d = store.t["delivered"]
    latest = {r.row_key: r for r in rows}  # a key journaled twice: the later send is what may be held
    follows = bool(getattr(rules, "record_follows_row", False))
    keys = list(latest)
    known: dict[str, tuple[str, str | None]] = {
        k: (v, i)
        for k, v, i in select_keys(c, store.dialect, store.relation("delivered"), d, sync, keys, ("row_key", "row_values", "dest_id"))
    }
    before: dict[str, set[str]] = {}
    for k, i in select_keys(c, store.dialect, store.relation("claims"), store.t["claims"], sync, keys, ("row_key", "identity")):
        before.setdefault(k, set()).add(i)
    claims: list[tuple[str, str]] = []
    releases: list[Release] = []
    dest_ids: list[str | None] = []
    for key, r in latest.items():
        now_ids = r.identities if r.identities is not None else rules.identify(key, json.loads(r.row_values))
        claims += [(key, i) for i in now_ids]
        old = before.get(key, set())
        values, dest_id = known.get(key, (None, None))
        gone = sorted(old - set(now_ids))
        if gone and values is not None:
            # released without their record id: the dead run may have renamed that record to
            # the new identity in place (Salesforce), and removing it by id would remove the
            # row's live record; the old identity is found by value, if anything still holds it
            releases += Release.of(rules, gone, key, None, json.loads(values))
        # the record id belongs to the identity it was learnt under, unless the record follows
        # the row (renamed in place: it holds the old identity or the new one, by this id)
        dest_ids.append(dest_id if old == set(now_ids) or follows else None)
    delete_keys(c, store.dialect, store.relation("delivered"), d, sync, keys)
    insert_columns(
        c,
        store.dialect,
        store.relation("delivered"),
        d,
        {
            "sync_name": Same(sync),
            "row_key": keys,
            "row_hash": Same(UNKNOWN_HASH),
            "row_values": [latest[k].row_values for k in keys],
            "dest_id": dest_ids,
            "delivered_at": Same(now),
        },
    )
    replace_claims(store, c, sync, keys, claims)
    add_releases(store, c, sync, releases, now)


def ensure_claims(store: StateStore, sync: str, rules: IdentityRules, now: datetime) -> int:
    """Compute the claims of `sync`'s delivered rows when they were made under other identity
    rules, or before claims were kept (a store from an older release); returns how many rows
    were looked at (0 when the claims were current). Rows are read on one connection while
    claims are written on another, a chunk at a time: memory stays bounded, and an interrupted
    pass starts over (the version is recorded last).

    Older releases kept an identity a row had before an interrupted run as a "ghost" delivered
    row (key + LEGACY_GHOST + run id): each becomes releases of its identities.
    """
    v, d, cl = store.t["identity_versions"], store.t["delivered"], store.t["claims"]
    with store.engine.connect() as read:
        if read.execute(sa.select(v.c.version).where(v.c.sync_name == sync)).scalar() == rules.version:
            return 0
        with store.engine.begin() as c:
            c.execute(cl.delete().where(cl.c.sync_name == sync))
        seen = 0
        ghosts: list[str] = []
        claims: list[tuple[str, str]] = []
        releases: list[Release] = []
        rows = read.execution_options(stream_results=True, yield_per=5000).execute(
            sa.select(d.c.row_key, d.c.row_values, d.c.dest_id).where(d.c.sync_name == sync)
        )
        for chunk in rows.partitions(5000):
            for key, text, dest_id in chunk:
                values = json.loads(text)
                if LEGACY_GHOST in key:
                    ghosts.append(key)
                    releases += Release.of(rules, rules.identify(key.split(LEGACY_GHOST)[0], values), None, dest_id, values)
                else:
                    claims += [(key, i) for i in rules.identify(key, values)]
            seen += len(chunk)
            if len(claims) >= 20_000:
                with store.engine.begin() as c:
                    replace_claims(store, c, sync, [], claims)
                claims = []
        with store.engine.begin() as c:
            replace_claims(store, c, sync, [], claims)
            delete_keys(c, store.dialect, store.relation("delivered"), d, sync, ghosts)
            add_releases(store, c, sync, releases, now)
            c.execute(v.delete().where(v.c.sync_name == sync))
            c.execute(v.insert().values(sync_name=sync, version=rules.version))
        return seen
