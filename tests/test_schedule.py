"""Sync schedules: crontab semantics (not APScheduler's), intervals, errors with file:line."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import make_project

from activation.project.schedule import Schedule, parse_duration, parse_schedule
from activation_emulators.webhook import WebhookReceiver

START = datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc)  # a Sunday


def fires(schedule: Schedule, n: int, start: datetime = START, tz: str = "UTC") -> list[datetime]:
    trigger = schedule.trigger(tz)
    assert trigger is not None
    out: list[datetime] = []
    previous, now = None, start
    for _ in range(n):
        nxt = trigger.get_next_fire_time(previous, now)
        assert nxt is not None
        out.append(nxt)
        previous, now = nxt, nxt + timedelta(microseconds=1)
    return out


@pytest.mark.parametrize(
    ("cron", "weekdays"),
    [
        ("0 9 * * 0", ["Sun"]),  # crontab: 0 is Sunday (APScheduler alone would say Monday)
        ("0 9 * * 7", ["Sun"]),
        ("0 9 * * 1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("0 9 * * */2", ["Sun", "Tue", "Thu", "Sat"]),
        ("0 9 * * fri-sun", ["Fri", "Sat", "Sun"]),
        ("0 9 * * 5-7", ["Fri", "Sat", "Sun"]),
        ("0 9 * * MON,wed", ["Mon", "Wed"]),
    ],
)
def test_cron_weekdays_follow_crontab(cron: str, weekdays: list[str]) -> None:
    s = parse_schedule(cron)
    days = {d.strftime("%a") for d in fires(s, 14)}
    assert days == set(weekdays)
    assert all(d.hour == 9 and d.minute == 0 for d in fires(s, 5))


def test_day_of_month_and_weekday_together_mean_either() -> None:
    # crontab(5): the 13th of the month, and every Friday
    got = fires(parse_schedule("0 0 13 * 5"), 12)
    assert all(d.day == 13 or d.strftime("%a") == "Fri" for d in got)
    assert any(d.day == 13 and d.strftime("%a") != "Fri" for d in got)
    assert any(d.strftime("%a") == "Fri" and d.day != 13 for d in got)


def test_shortcuts_intervals_and_manual() -> None:
    assert fires(parse_schedule("@hourly"), 2, START + timedelta(seconds=1)) == [START + timedelta(hours=1), START + timedelta(hours=2)]
    assert parse_schedule("@daily").cron == "0 0 * * *"
    every = parse_schedule("every 30m")
    assert every.kind == "every" and every.seconds == 1800 and every.text == "every 30m"
    # aligned on the epoch: every daemon computes the same slots, whenever it started
    late = START + timedelta(minutes=7, seconds=3)
    assert fires(every, 2, late) == [START + timedelta(minutes=30), START + timedelta(minutes=60)]
    assert parse_schedule({"every": "1h30m"}).seconds == 5400
    assert parse_schedule({"cron": "*/15 * * * *"}).cron == "*/15 * * * *"
    assert parse_schedule("manual").trigger() is None
    assert parse_duration("2s") == 2 and parse_duration(90) == 90 and parse_duration("1d") == 86400


def test_cron_in_another_time_zone() -> None:
    got = fires(parse_schedule("0 9 * * *"), 1, tz="Europe/Paris")[0]
    assert got.astimezone(timezone.utc).hour == 8  # 09:00 in Paris in winter is 08:00 UTC


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("*/15 * * *", "a cron schedule has 5 fields"),
        ("61 * * * *", "minute field '61': the last value (61) is higher than the maximum value (59)"),
        ("0 0 * * 8", "8 is not a day"),
        ("*/0 * * * *", "minute field '*/0'"),
        ("@reboot", "unknown cron shortcut"),
        ("every 30", "give an interval with a unit"),
        ("every 0.5s", "shorter than the minimum interval of 1s"),
        ({"every": "5m", "cron": "* * * * *"}, "exactly one key"),
    ],
)
def test_bad_schedules_say_what_is_wrong(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=None) as e:
        parse_schedule(value)
    assert message in str(e.value)


def test_validate_names_the_line_of_a_bad_schedule(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = make_project(tmp_path / "s", rx)
    text = (p.root / "syncs.yaml").read_text().replace("    mode: upsert\n", "    mode: upsert\n    schedule: '*/15 * * 13 *'\n")
    (p.root / "syncs.yaml").write_text(text)
    line = text.splitlines().index("    schedule: '*/15 * * 13 *'") + 1
    result = p.json("validate", "--offline", expect=2)
    assert result["ok"] is False
    (error,) = result["errors"]
    assert error.startswith(f"syncs.yaml:{line}:")
    assert "syncs.users_to_hook.schedule" in error and "month field '13'" in error


def test_daemon_section_and_depends_on_are_checked(tmp_path: Path, rx: WebhookReceiver) -> None:
    p = make_project(tmp_path / "d", rx, extra_yaml="daemon: {lease_ttl: soon, health_prt: 1}\n")
    text = (p.root / "syncs.yaml").read_text().replace("    mode: upsert\n", "    mode: upsert\n    depends_on: [nope]\n")
    (p.root / "syncs.yaml").write_text(text)
    errors = p.json("validate", "--offline", expect=2)["errors"]
    assert any("daemon.lease_ttl" in e and "'soon' is not a duration" in e for e in errors), errors
    assert any("unknown key 'health_prt' (did you mean 'health_port'?)" in e for e in errors), errors
    fixed = text.replace("daemon: {lease_ttl: soon, health_prt: 1}\n", "")
    (p.root / "syncs.yaml").write_text(fixed)
    errors = p.json("validate", "--offline", expect=2)["errors"]
    assert len(errors) == 1 and "depends_on: 'nope' names no trait, audience or entity" in errors[0]
    (p.root / "syncs.yaml").write_text(fixed.replace("depends_on: [nope]", "depends_on: [whales]"))
    assert p.json("validate", "--offline")["ok"] is True
