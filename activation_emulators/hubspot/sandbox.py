"""`--sandbox` for the HubSpot destination: a local HubSpot whose account gets a property for
each mapped field, typed from the model."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from activation_emulators.hubspot.server import HubSpotEmulator
from activation_emulators.sandbox import SANDBOX_TOKEN, StandIn


def stand_in(stack: ExitStack, spec: Any, syncs: list[Any]) -> StandIn:
    emu = stack.enter_context(HubSpotEmulator(tokens=None))  # properties: add_properties()

    def summary(name: str) -> str:
        held = ", ".join(f"{len(emu.records(t))} {t}" for t in ("contacts", "companies"))
        checked = (
            f"{len(emu.invalid_requests)} invalid requests"
            if emu.unvalidated_reason is None
            else f"requests not validated ({emu.unvalidated_reason})"
        )
        return f"{name}: local HubSpot at {emu.url} holds {held}; {checked}"

    return StandIn(
        spec.model_copy(update={"base_url": emu.url, "token": SANDBOX_TOKEN}),
        emu,
        summary,
        lambda session, prepared: add_properties(emu, session, prepared),
    )


def add_properties(emu: HubSpotEmulator, session: Any, prepared: dict[str, Any]) -> None:
    """Give the sandbox HubSpot account every property its syncs map and it lacks, typed
    from the model: a field that maps a column takes the type of that column's values (of a
    sample of rows); any other field is a string property."""
    project = session.project
    for name, ps in prepared.items():
        spec = project.syncs[name]
        obj = spec.object or "contacts"
        try:
            known = emu.property_definitions(obj)
        except KeyError:
            continue  # an object the emulator lacks: reported at run time
        sample = None
        for prop, expr in {**spec.match, **spec.fields}.items():
            if prop in known:
                continue
            if sample is None:
                sql = f"SELECT * FROM ({ps.query.model_sql}) AS q LIMIT {_SAMPLE}"
                sample = [dict(r._mapping) for chunk in session.warehouse.stream(session.conn, sql) for r in chunk]
            emu.add_property(obj, prop, type=_property_type(expr, sample))


_SAMPLE = 200


def _property_type(expr: str, rows: list[dict[str, Any]]) -> str:
    """A HubSpot property type for a field mapping `expr`: its column's, else string."""
    column = {k.lower(): k for k in rows[0]}.get(expr.strip().lower()) if rows else None
    values = [r[column] for r in rows if r[column] is not None] if column else []
    if not values:
        return "string"
    if all(isinstance(v, bool) for v in values):
        return "bool"
    if all(isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in values):
        return "number"
    if all(isinstance(v, datetime) for v in values):
        return "datetime"
    if all(isinstance(v, date) and not isinstance(v, datetime) for v in values):
        return "date"
    return "string"
