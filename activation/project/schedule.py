"""When `activation daemon` runs a sync: a cron expression, a fixed interval, or manual.

Written in syncs.yaml as `"*/15 * * * *"`, `"@hourly"`, `"every 30m"`, `{every: 30m}`,
`{cron: "0 6 * * 1-5"}` or `"manual"`. Cron follows crontab(5): day of week 0 or 7 is Sunday,
and when both day of month and day of week are restricted a day matching *either* runs
(APScheduler numbers weekdays from Monday and ANDs the two fields, so both are translated).
Intervals are aligned on the epoch, so every daemon computes the same slots.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

#: The shortest interval accepted (tests use it); production schedules are minutes or more.
MIN_INTERVAL_SECONDS = 1.0
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?[dhms])+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_SPECIAL = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = ("minute", "hour", "day", "month", "day_of_week")  # APScheduler's names, crontab order
_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def parse_duration(value: Any) -> float:
    """Seconds from `30s`, `5m`, `1h30m`, `2d` (or a number of seconds)."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 30s, 5m, 1h30m")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    if not _DURATION.match(text):
        raise ValueError(f"{value!r} is not a duration: use a number and a unit, like 30s, 5m, 1h30m or 1d")
    return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))


class Schedule(BaseModel):
    """A parsed schedule; `text` is how it is shown (and serialised)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["cron", "every", "manual"]
    text: str
    cron: str | None = None  # the five crontab fields (specials expanded)
    seconds: float | None = None  # kind every

    def trigger(self, tz: tzinfo | str = "UTC") -> BaseTrigger | None:
        """The APScheduler trigger; None for manual."""
        if self.kind == "manual":
            return None
        from apscheduler.triggers.interval import IntervalTrigger

        if self.kind == "every":
            assert self.seconds is not None
            return IntervalTrigger(seconds=self.seconds, start_date=EPOCH, timezone=timezone.utc)
        assert self.cron is not None
        return _cron_trigger(self.cron, tz)

    @property
    def min_interval(self) -> float | None:
        """The shortest time between two runs, in seconds (over a week of fire times, in
        UTC); None for manual."""
        if self.kind != "cron":
            return self.seconds  # every: its interval; manual: None
        trigger = self.trigger()
        assert trigger is not None
        start = datetime(2026, 1, 5, tzinfo=timezone.utc)  # a Monday: a week covers every cron pattern
        fires: list[datetime] = []
        now = start
        while len(fires) < 2000 and (not fires or fires[-1] < start + timedelta(days=7)):
            nxt = trigger.get_next_fire_time(fires[-1] if fires else None, now)
            if nxt is None:
                break
            fires.append(nxt)
            now = nxt + timedelta(microseconds=1)
        gaps = [(b - a).total_seconds() for a, b in zip(fires, fires[1:], strict=False)]
        return min(gaps) if gaps else None


def parse_schedule(value: Any) -> Schedule:
    if isinstance(value, Schedule):
        return value
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in ("every", "cron"):
            raise ValueError('a schedule mapping has exactly one key: `every: 30m` or `cron: "*/15 * * * *"`')
        ((key, inner),) = value.items()
        if not isinstance(inner, str):
            raise ValueError(f"`{key}:` takes text, like {'30m' if key == 'every' else repr('*/15 * * * *')}")
        return _every(inner) if key == "every" else _cron(inner)
    if not isinstance(value, str):
        raise ValueError('a schedule is cron text ("*/15 * * * *"), "every 30m" or "manual"')
    text = " ".join(value.split())
    if text.lower() == "manual":
        return Schedule(kind="manual", text="manual")
    if text.lower().startswith("every"):
        return _every(text[len("every") :])
    return _cron(text)


def _every(text: str) -> Schedule:
    text = text.strip()
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise ValueError(f"'every {text}': give an interval with a unit, like every 30s, every 15m, every 1h30m") from None
    if seconds < MIN_INTERVAL_SECONDS:
        raise ValueError(f"'every {text}' is shorter than the minimum interval of {MIN_INTERVAL_SECONDS:g}s")
    return Schedule(kind="every", text=f"every {text.replace(' ', '')}", seconds=seconds)


def _cron(text: str) -> Schedule:
    expanded = _SPECIAL.get(text.lower(), text)
    if expanded.startswith("@"):
        raise ValueError(f"unknown cron shortcut {text!r} (known: {', '.join(_SPECIAL)})")
    fields = expanded.split()
    if len(fields) != 5:
        raise ValueError(
            f"a cron schedule has 5 fields (minute hour day-of-month month day-of-week), {text!r} has {len(fields)}; "
            'or write "every 30m" or "manual"'
        )
    try:
        _cron_trigger(expanded, "UTC")  # raises a ValueError naming the field
    except ModuleNotFoundError:
        # The base install has no APScheduler; the daemon, which runs schedules, needs it (the
        # daemon extra) and checks every field when it loads the project.
        _weekdays(fields[4])
    return Schedule(kind="cron", text=text, cron=expanded)


def _cron_trigger(cron: str, tz: tzinfo | str) -> BaseTrigger:
    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.cron import CronTrigger

    values = cron.split()
    values[4] = _weekdays(values[4])
    for field, name, expr in zip(_FIELDS, _FIELD_NAMES, values, strict=False):
        try:
            CronTrigger(**{field: expr}, timezone="UTC")
        except ValueError as e:
            reason = re.sub(r"^Error validating expression '[^']*': ", "", str(e))
            raise ValueError(f"cron {cron!r}: {name} field {expr!r}: {reason}") from None
    fields = dict(zip(_FIELDS, values, strict=False))
    dom, dow = cron.split()[2], cron.split()[4]
    if not dom.startswith("*") and not dow.startswith("*"):
        # crontab(5): "if both fields are restricted, the command runs when either matches"
        return OrTrigger(
            [
                CronTrigger(**{**fields, "day_of_week": "*"}, timezone=tz),
                CronTrigger(**{**fields, "day": "*"}, timezone=tz),
            ]
        )
    return CronTrigger(**fields, timezone=tz)


def _weekdays(field: str) -> str:
    """A crontab day-of-week field (0/7 = Sunday, names, ranges, steps) as APScheduler day
    names. APScheduler counts from Monday, so numbers and steps cannot be passed through."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        rng, _, step_text = part.partition("/")
        step = _number(step_text, "step") if step_text else 1
        if step < 1:
            raise ValueError(f"cron day of week {field!r}: a step must be at least 1")
        if rng == "*":
            lo, hi = 0, 6
        elif "-" in rng:
            a, b = rng.split("-", 1)
            lo, hi = _weekday(a, field), _weekday(b, field)
            if hi == 0 and lo > 0:
                hi = 7  # fri-sun, 5-7: up to Sunday
        else:
            lo = _weekday(rng, field)
            hi = 6 if step_text else lo
        if hi < lo:
            raise ValueError(f"cron day of week {field!r}: range {rng!r} runs backwards")
        days |= {d % 7 for d in range(lo, (7 if hi == 7 else hi) + 1, step)}
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


def _weekday(text: str, field: str) -> int:
    if text in _WEEKDAYS:
        return _WEEKDAYS.index(text)
    n = _number(text, "day")
    if not 0 <= n <= 7:
        raise ValueError(f"cron day of week {field!r}: {text} is not a day (0-7, 0 and 7 are Sunday, or sun-sat)")
    return 7 if n == 7 else n


def _number(text: str, what: str) -> int:
    if not text.isdigit():
        raise ValueError(f"cron day of week: {text!r} is not a {what}")
    return int(text)


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema({"description": "Seconds, or text like 30s, 5m, 1h30m.", "anyOf": [{"type": "number"}, {"type": "string"}]}),
]

ScheduleField = Annotated[
    Schedule,
    BeforeValidator(parse_schedule),
    PlainSerializer(lambda s: s.text, return_type=str),
    WithJsonSchema(
        {
            "description": 'When the daemon runs this sync: cron ("*/15 * * * *", "@hourly"), '
            '"every 30m" or "manual"; or {every: 30m} / {cron: "..."}.',
            "anyOf": [
                {"type": "string"},
                {"type": "object", "properties": {"every": {"type": "string"}}, "required": ["every"], "additionalProperties": False},
                {"type": "object", "properties": {"cron": {"type": "string"}}, "required": ["cron"], "additionalProperties": False},
            ],
        }
    ),
]
