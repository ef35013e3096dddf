"""An unreadable in-flight journal entry stops its sync with a message naming the entry and how
to clear it, never a bare decoding error; `activation reset` clears it and the next run
delivers every row again."""

from __future__ import annotations

from conftest import Project

from activation.state.journal import JOURNAL_PREFIX


def _state_table(p: Project, name: str) -> str:
    [(schema,)] = p.sql(f"SELECT table_schema FROM information_schema.tables WHERE table_name = '{name}'")
    return f'"{schema}"."{name}"'


def test_a_corrupt_journal_entry_names_itself_and_reset_clears_it(project: Project) -> None:
    p, rx = project, project.rx
    assert rx is not None
    p.cli("run", "users_to_hook")
    in_flight = _state_table(p, "in_flight")
    p.sql(
        f"INSERT INTO {in_flight} VALUES ('users_to_hook', '{JOURNAL_PREFIX}deadbeef', "
        "'{\"keys\": [\"u0001\"], \"values\": [', 'run-that-died', TIMESTAMP '2026-01-01')"
    )  # cut mid-write

    failed = p.cli("run", "users_to_hook", expect=None)
    assert failed.exit_code != 0
    assert "in-flight journal entry deadbeef" in failed.output, failed.output
    assert "run-that-died" in failed.output and "activation reset users_to_hook" in failed.output
    as_json = p.json("run", "users_to_hook", expect=failed.exit_code)
    assert "deadbeef" in str(as_json)
    for command in ("plan", "status"):  # the previews say the same, they do not crash
        shown = p.cli(command, "users_to_hook", expect=None)
        assert "deadbeef" in shown.output and shown.exception is None or isinstance(shown.exception, SystemExit), shown.output

    assert "1 in flight" in p.cli("reset", "users_to_hook", "--yes").output
    result = p.json("run", "users_to_hook")
    assert result["ok"] is True
    assert result["syncs"][0]["plan"]["counts"]["added"] == len(p.model_users()), "every row is sent again"
    assert rx.records("users_to_hook") == p.model_users()
    assert p.json("run", "users_to_hook")["syncs"][0]["status"] == "up_to_date"
