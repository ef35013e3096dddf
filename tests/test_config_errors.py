"""Bad input gets a clear error, exit code 2, a file:line or the sync/trait it concerns — and
nothing is sent. Every test drives the real CLI against a real DuckDB warehouse and a real
local webhook receiver (see conftest.py)."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import Project, make_project
from typer.testing import CliRunner

from activation.cli import app
from activation.project import secrets
from activation_emulators.webhook import WebhookReceiver

GOOD = """\
version: 1
warehouse: {type: duckdb, path: warehouse.duckdb}
entities:
  user: {table: src.users, key: user_id}
traits:
  ltv:
    entity: user
    sql: "select user_id, sum(amount) as ltv from src.orders group by 1"
  engagement:
    entity: user
    score:
      ltv: {weight: 1.0, points: [[0, 1], [100, 3]]}
      seats: {weight: 0.5, points: [[3, 2]]}
audiences:
  whales: {entity: user, where: "ltv >= 100"}
destinations:
  hook:
    type: webhook
    url: "${HOOK_URL}"
    batch_size: 50
    max_retries: 0
syncs:
  users_to_hook:
    from: user
    to: hook
    object: contacts
    mode: upsert
    match: {email: email}
    fields:
      plan: plan
      ltv: ltv
      plan_upper: "{{ row.plan | upper }}"
"""


@pytest.fixture
def p(tmp_path: Path, rx: WebhookReceiver) -> Project:
    proj = make_project(tmp_path / "proj", rx, n=20, orders=60)
    write(proj, GOOD)
    return proj


def write(p: Project, text: str, name: str = "syncs.yaml") -> str:
    path = p.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(text)
    path.write_text(text)
    return text


def edit(p: Project, old: str, new: str, *, base: str = GOOD) -> str:
    assert old in base, old
    return write(p, base.replace(old, new, 1))


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing `needle`."""
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in the text")


def fails(p: Project, *args: str) -> str:
    """Run a command that must refuse the project (exit 2, nothing sent); return its output."""
    result = p.cli(*args, expect=2)
    out = result.output
    assert "Traceback" not in out, out
    assert p.rx.request_count == 0, "an invalid project must send nothing"
    return out


def both(p: Project) -> str:
    """`validate` and `run` both refuse it with the same message; return validate's output."""
    v = fails(p, "validate")
    r = fails(p, "run")
    assert "nothing was sent" in r
    issues = [line.strip() for line in v.splitlines()[1:] if line.strip()]
    for issue in issues:
        assert issue in r.replace("\n", " ") or issue in r, (issue, r)
    return v


# ---------------------------------------------------------------- 1. malformed YAML


def test_bad_indent_points_at_line_and_column(p: Project) -> None:
    text = edit(p, "    to: hook\n", "     to: hook\n")  # one space too many
    out = both(p)
    line = line_of(text, "     to: hook")
    assert f"syncs.yaml:{line}:" in out and "invalid YAML" in out


def test_unclosed_bracket_points_at_line_and_column(p: Project) -> None:
    text = edit(p, "match: {email: email}", "match: {email: email")
    out = both(p)
    # the parser notices on the next line; the message also says where the mapping started
    line = line_of(text, "match: {email: email")
    assert f"syncs.yaml:{line + 1}:" in out and "invalid YAML" in out
    assert f"while parsing a flow mapping (started at line {line}, column 12)" in out


def test_unclosed_quote_says_where_it_started(p: Project) -> None:
    text = edit(p, "object: contacts", "object: 'contacts")
    out = both(p)
    assert f"(started at line {line_of(text, 'contacts')}, column 13)" in out and "end of stream" in out


def test_duplicate_key_in_one_file(p: Project) -> None:
    text = edit(p, "    object: contacts\n", "    object: contacts\n    object: people\n")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'people')}:5: invalid YAML: key 'object' appears twice in the same mapping" in out


def test_a_json_output_carries_the_error_too(p: Project) -> None:
    edit(p, "    to: hook\n", "     to: hook\n")
    out = p.json("validate", expect=2)
    assert out["ok"] is False and "syncs.yaml:" in out["errors"][0]


# ---------------------------------------------------------------- 2. unknown keys


def test_unknown_top_level_key_suggests_the_right_one(p: Project) -> None:
    text = edit(p, "destinations:\n", "destinatons:\n")
    out = fails(p, "validate", "--offline")
    assert f"syncs.yaml:{line_of(text, 'destinatons:')}:1: " in out
    assert "unknown key 'destinatons'" in out and "did you mean 'destinations'?" in out


def test_unknown_sync_key_suggests_the_right_one(p: Project) -> None:
    text = edit(p, "    fields:\n", "    feilds:\n")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'feilds:')}:5: syncs.users_to_hook.feilds: unknown key 'feilds' (did you mean 'fields'?)" in out


def test_unknown_destination_key_names_it(p: Project) -> None:
    text = edit(p, "    max_retries: 0\n", "    max_retires: 0\n")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'max_retires')}:5: destinations.hook.max_retires: unknown key 'max_retires'" in out
    assert "did you mean 'max_retries'?" in out


def test_unknown_nested_key_suggests_from_the_right_model(p: Project) -> None:
    text = edit(p, "seats: {weight: 0.5,", "seats: {wieght: 0.5,")
    out = fails(p, "validate", "--offline")
    assert f"syncs.yaml:{line_of(text, 'wieght')}:" in out
    assert "traits.engagement.score.seats.wieght: unknown key 'wieght' (did you mean 'weight'?)" in out


# ---------------------------------------------------------------- 3. wrong types and enums


def test_invalid_mode_names_the_choices_and_the_line(p: Project) -> None:
    text = edit(p, "mode: upsert", "mode: upsret")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'upsret')}:5: syncs.users_to_hook.mode:" in out
    assert "'upsert'" in out and "'mirror'" in out and "upsret" in out


def test_wrong_type_names_the_line(p: Project) -> None:
    text = edit(p, "batch_size: 50", "batch_size: fifty")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'fifty')}:5: destinations.hook.batch_size:" in out and "integer" in out


def test_unknown_destination_type_lists_the_types(p: Project) -> None:
    text = edit(p, "type: webhook", "type: webhok")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'webhok')}:" in out and "'webhook'" in out and "'file'" in out


# ---------------------------------------------------------------- 4. unknown references


def test_sync_to_an_undefined_destination(p: Project) -> None:
    text = edit(p, "    to: hook\n", "    to: crm\n")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'to: crm')}:5: " in out
    assert "destination 'crm' is not defined (defined: hook)" in out
    fails(p, "validate", "--offline")  # no warehouse needed to see it


def test_sync_from_an_undefined_entity_or_audience(p: Project) -> None:
    text = edit(p, "    from: user\n", "    from: users\n")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'from: users')}:5: " in out
    assert "`from: users` names no entity or audience (known: user, whales)" in out


@pytest.mark.parametrize("section", ["traits", "audiences"])
def test_trait_or_audience_of_an_undefined_entity(p: Project, section: str) -> None:
    old = "    entity: user\n    sql:" if section == "traits" else "whales: {entity: user,"
    new = old.replace("user", "customer")
    text = edit(p, old, new)
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'customer')}:" in out and "unknown entity 'customer'" in out
    name = "ltv" if section == "traits" else "whales"
    assert f"{section}.{name}.entity" in out


def test_ref_to_nothing_names_the_trait(p: Project) -> None:
    text = edit(p, "from src.orders group by 1", "from {{ ref('nope') }} group by 1")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'nope')}:" in out
    assert "trait ltv" in out and "ref('nope') names no trait, entity or audience" in out


# ---------------------------------------------------------------- 5. mappings vs the model's columns


@pytest.mark.parametrize("mapping", ["plann", "'{{ row.plann | upper }}'", '\'{{ row["plann"] ~ "!" }}\''])
def test_mapping_a_missing_column(p: Project, mapping: str) -> None:
    text = edit(p, "      plan: plan\n", f"      plan: {mapping}\n")
    out = fails(p, "validate")
    line = line_of(text, "plann")
    assert f"syncs.yaml:{line}:7: sync users_to_hook: fields.plan uses column 'plann', which the model lacks" in out
    assert "(columns: user_id, email, plan, seats, spend, ltv, engagement)" in out
    run = fails(p, "run")
    assert "fields.plan uses column 'plann'" in run
    fails(p, "plan")


def test_match_on_a_missing_column(p: Project) -> None:
    text = edit(p, "match: {email: email}", "match: {email: e_mail}")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'e_mail')}:" in out and "match.email uses column 'e_mail'" in out


# ---------------------------------------------------------------- 6. SQL the warehouse rejects


def test_trait_reading_a_missing_table(p: Project) -> None:
    text = edit(p, "from src.orders group by 1", "from src.orderz group by 1")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, '  ltv:')}:" in out
    assert "trait ltv: the warehouse rejected it:" in out and "orderz" in out


def test_trait_sql_file_with_a_syntax_error_names_the_file(p: Project) -> None:
    write(p, "select user_id, sum(amount) as ltv\nfrom src.orders\ngroup by by 1\n", "traits/ltv.sql")
    edit(p, 'sql: "select user_id, sum(amount) as ltv from src.orders group by 1"', "sql: traits/ltv.sql")
    out = both(p)
    assert "trait ltv (traits/ltv.sql): the warehouse rejected it:" in out and "syntax error" in out.lower()


def test_trait_sql_file_that_is_not_utf8(p: Project) -> None:
    (p.root / "traits").mkdir()
    (p.root / "traits" / "ltv.sql").write_bytes(b"-- ok\nselect user_id, 1 as ltv from src.users -- caf\xe9\n")
    text = edit(p, 'sql: "select user_id, sum(amount) as ltv from src.orders group by 1"', "sql: traits/ltv.sql")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'ltv.sql')}:5: traits.ltv.sql: cannot read traits/ltv.sql: not valid UTF-8 (line 2)" in out


def test_trait_sql_file_that_does_not_exist(p: Project) -> None:
    text = edit(p, 'sql: "select user_id, sum(amount) as ltv from src.orders group by 1"', "sql: traits/nope.sql")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'nope.sql')}:" in out and "cannot read traits/nope.sql" in out


def test_validate_checks_an_audience_no_sync_uses(p: Project) -> None:
    text = edit(p, 'where: "ltv >= 100"', 'where: "ltvv >= 100"')
    out = fails(p, "validate")
    assert f"syncs.yaml:{line_of(text, 'ltvv')}:3: audience whales (where: ltvv >= 100): the warehouse rejected it:" in out
    assert "ltvv" in out
    p.cli("run")  # a run only needs what its syncs use
    assert len(p.rx.records("users_to_hook")) == 20


# ---------------------------------------------------------------- 7. a trait returning the wrong columns


def test_trait_returning_the_wrong_columns(p: Project) -> None:
    edit(p, "sum(amount) as ltv from", "sum(amount) as total from")
    out = both(p)
    assert "trait ltv: must return exactly the columns user_id, ltv; it returned user_id, total" in out
    assert "warehouse rejected" not in out  # the warehouse did not: the SQL ran


# ---------------------------------------------------------------- 8. includes


INCLUDED = """\
syncs:
  whales_to_hook:
    from: whales
    to: hook
    mode: audience
    match: {email: email}
"""


def test_include_merges_entries(p: Project) -> None:
    edit(p, "version: 1\n", "version: 1\ninclude: [syncs/*.yaml]\n")
    write(p, INCLUDED, "syncs/whales.yaml")
    assert p.json("validate")["syncs"] == 2
    p.cli("run")
    assert set(p.rx.records("whales_to_hook")) == set(p.model_whales())


def test_errors_in_an_included_file_point_at_it(p: Project) -> None:
    edit(p, "version: 1\n", "version: 1\ninclude: [syncs/*.yaml]\n")
    inc = write(p, INCLUDED.replace("mode: audience", "mode: audiance"), "syncs/whales.yaml")
    out = both(p)
    assert f"syncs/whales.yaml:{line_of(inc, 'audiance')}:5: syncs.whales_to_hook.mode:" in out

    inc = write(p, INCLUDED.replace("    to: hook\n", "     to: hook\n"), "syncs/whales.yaml")
    out = both(p)
    assert f"syncs/whales.yaml:{line_of(inc, '     to: hook')}:" in out and "invalid YAML" in out


def test_a_sync_defined_twice_names_both_places(p: Project) -> None:
    main = edit(p, "version: 1\n", "version: 1\ninclude: [syncs/*.yaml]\n")
    inc = write(p, INCLUDED.replace("whales_to_hook", "users_to_hook"), "syncs/dup.yaml")
    out = both(p)
    assert f"syncs/dup.yaml:{line_of(inc, 'users_to_hook')}:3: " in out
    assert f"sync 'users_to_hook' is defined twice (first at syncs.yaml:{line_of(main, 'users_to_hook')}:3)" in out


def test_include_must_be_a_list(p: Project) -> None:
    main = edit(p, "version: 1\n", "version: 1\ninclude: syncs/*.yaml\n")
    write(p, INCLUDED, "syncs/whales.yaml")
    out = fails(p, "validate", "--offline")
    assert f"syncs.yaml:{line_of(main, 'include')}:1: include: Input should be a valid list (got 'syncs/*.yaml')" in out
    assert "does not exist" not in out  # the string is not taken letter by letter


def test_an_include_that_does_not_exist(p: Project) -> None:
    main = edit(p, "version: 1\n", "version: 1\ninclude:\n  - syncs/whales.yaml\n  - syncs/missing.yaml\n")
    write(p, INCLUDED, "syncs/whales.yaml")
    out = both(p)
    assert f"syncs.yaml:{line_of(main, 'missing.yaml')}:5: included file 'syncs/missing.yaml' does not exist" in out


# ---------------------------------------------------------------- 9. ${ENV} and secrets


SECRET = "s3cr3t-T0KEN-value-9f8e7d"


def cli_env(p: Project, *args: str, env: dict[str, str | None], expect: int | None = 0) -> Any:
    """Like Project.cli with extra environment; the redactor starts empty, as in a new process."""
    secrets.redact._secrets.clear()
    result = CliRunner().invoke(app, [*args, "--project", str(p.root)], env={"HOOK_URL": p.rx.url, **env})
    if expect is not None:
        assert result.exit_code == expect, f"exit {result.exit_code}, wanted {expect}:\n{result.output}\n{result.exception!r}"
    return result


def with_token_header(p: Project) -> str:
    return edit(p, "    max_retries: 0\n", "    max_retries: 0\n    headers: {Authorization: 'Bearer ${HOOK_TOKEN}'}\n")


def test_missing_env_for_a_header_is_a_config_error(p: Project) -> None:
    text = with_token_header(p)
    result = cli_env(p, "run", env={"HOOK_TOKEN": None}, expect=2)
    assert "environment variable HOOK_TOKEN is not set" in result.output
    assert f"syncs.yaml:{line_of(text, 'HOOK_TOKEN')}:" in result.output
    assert p.rx.request_count == 0
    assert "Traceback" not in result.output


def test_missing_env_for_the_url_is_a_config_error(p: Project) -> None:
    edit(p, 'url: "${HOOK_URL}"', 'url: "${HOOK_URL_NOT_SET}"')
    result = cli_env(p, "run", "--json", env={}, expect=2)
    errors = json.loads(result.stdout)["errors"]
    assert any("environment variable HOOK_URL_NOT_SET is not set" in e and "hook" in e for e in errors), errors
    assert p.rx.request_count == 0


def test_env_default_is_used(p: Project) -> None:
    edit(p, 'url: "${HOOK_URL}"', 'url: "${HOOK_URL_NOT_SET:-' + p.rx.url + '}"')
    cli_env(p, "run", env={})
    assert len(p.rx.records("users_to_hook")) == 20


def test_a_secret_never_appears_in_output_or_state(p: Project) -> None:
    # The secret goes in a header and in the URL's query string.
    edit(p, "    max_retries: 0\n", "    max_retries: 0\n    headers: {Authorization: 'Bearer ${HOOK_TOKEN}'}\n")
    text = (p.root / "syncs.yaml").read_text().replace('url: "${HOOK_URL}"', 'url: "${HOOK_URL}?token=${HOOK_TOKEN}"')
    write(p, text)
    env = {"HOOK_TOKEN": SECRET}
    outputs = []

    def run(*args: str, expect: int | None = 0) -> None:
        outputs.append(cli_env(p, *args, env=env, expect=expect).output)

    run("validate"), run("validate", "--json"), run("plan"), run("plan", "--json")
    run("run", "--limit", "5"), run("run", "--json")
    assert p.rx.requests[0].headers["authorization"] == f"Bearer {SECRET}"  # it was used
    p.sql("UPDATE src.users SET plan = 'x' WHERE user_id = 'u0001'")
    p.rx.fail_next(5, status=503)  # a failure message mentions the URL
    run("run", expect=1)
    p.rx.clear_faults()
    p.rx.reject_keys({"u0001": f"bad token {SECRET}"})  # a receiver echoing it back
    run("run", "--json", expect=1)
    p.rx.clear_faults()
    p.rx.require_header("authorization", "Bearer something-else")  # 401
    p.sql("UPDATE src.users SET plan = 'y' WHERE user_id = 'u0002'")
    run("run", expect=1)
    for args in (("status",), ("status", "--json"), ("history", "users_to_hook"), ("history", "users_to_hook", "--json")):
        run(*args, expect=None)
    run("compile")
    assert any("503" in o for o in outputs) and any("401" in o for o in outputs)
    for out in outputs:
        assert SECRET not in out, out
    assert not [hit for hit in warehouse_strings(p.warehouse) if SECRET in hit]


def warehouse_strings(path: Path) -> list[str]:
    """Every value of every table in the DuckDB file, as text."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        assert any(schema.startswith("activation") for schema, _ in tables), tables  # the state is there
        found = []
        for schema, table in tables:
            for row in con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall():
                found.append(repr(row))
        return found
    finally:
        con.close()


# ---------------------------------------------------------------- 10. the jinja sandbox


@pytest.mark.parametrize(
    "template",
    [
        "{{ row.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ row['__class__'] }}",
        "{{ row | attr('__class__') }}",
    ],
)
def test_field_template_reaching_python_internals_is_refused(p: Project, template: str) -> None:
    text = edit(p, '      plan_upper: "{{ row.plan | upper }}"\n', f'      plan_upper: "{template}"\n')
    out = both(p)
    assert f"syncs.yaml:{line_of(text, '__class__')}:7: sync users_to_hook:" in out
    assert "fields.plan_upper" in out and "not allowed" in out and "__class__" in out


def test_field_template_that_cannot_compile(p: Project) -> None:
    text = edit(p, "row.plan | upper", "row.plan | uppercase")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'uppercase')}:7: sync users_to_hook:" in out
    assert "No filter named 'uppercase'" in out


@pytest.mark.parametrize("template", ["{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ ref.__globals__ }}"])
def test_sql_template_reaching_python_internals_is_refused(p: Project, template: str) -> None:
    text = edit(p, "from src.orders group by 1", f"from src.orders {template} group by 1")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, '__')}:" in out and "trait ltv" in out
    assert "unsafe" in out or "not allowed" in out


# ---------------------------------------------------------------- 11. hostile files


def test_non_utf8_file(p: Project) -> None:
    (p.root / "syncs.yaml").write_bytes(GOOD.encode().replace(b"object: contacts", b"object: caf\xe9"))
    out = both(p)
    assert f"syncs.yaml:{line_of(GOOD, 'object: contacts')}:" in out and "not valid UTF-8" in out


def test_alias_bomb_is_refused_fast(p: Project) -> None:
    bomb = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        bomb.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    write(p, GOOD.replace("version: 1\n", "version: 1\nvars:\n" + "".join(f"  {b}\n" for b in bomb)))
    started = time.monotonic()
    out = fails(p, "validate", "--offline")
    assert time.monotonic() - started < 5
    assert "alias" in out and "syncs.yaml:" in out


def test_small_aliases_and_merge_keys_still_work(p: Project) -> None:
    text = GOOD.replace("      plan: plan\n", "      plan: &col plan\n      plan_again: *col\n")
    text = text.replace("  users_to_hook:\n", "  users_to_hook: &base\n")
    text += "  users_again:\n    <<: *base\n    object: people\n    fieldz: {}\n"
    write(p, text)
    out = fails(p, "validate", "--offline")  # a key brought in by `<<:` is located at its mapping
    assert f"syncs.yaml:{line_of(text, 'fieldz')}:5: syncs.users_again.fieldz: unknown key 'fieldz'" in out
    write(p, text.replace("    fieldz: {}\n", ""))
    assert p.json("validate")["syncs"] == 2
    p.cli("run")
    assert p.rx.requests[-1].body["object"] == "people"
    assert p.rx.requests[-1].body["rows"][0]["fields"]["plan_again"] == p.rx.requests[-1].body["rows"][0]["fields"]["plan"]


def test_deep_nesting_is_refused(p: Project) -> None:
    write(p, GOOD.replace("version: 1\n", "version: 1\nvars:\n  deep: " + "[" * 100 + "]" * 100 + "\n"))
    out = fails(p, "validate", "--offline")
    assert "nesting deeper than" in out and "syncs.yaml:" in out
    write(p, GOOD.replace("version: 1\n", "version: 1\nvars:\n  deep: " + "[" * 5000 + "]" * 5000 + "\n"))
    out = fails(p, "validate", "--offline")
    assert "nest" in out and "syncs.yaml:" in out


def test_huge_file_is_refused_without_reading_it(p: Project) -> None:
    with open(p.root / "syncs.yaml", "w") as f:
        f.write(GOOD)
        f.write("# " + "x" * 1000 + "\n")
        f.seek(6 * 1024 * 1024)
        f.write("\n")
    out = both(p)
    assert "syncs.yaml:1:1: file is 6.0 MB; config files over 5 MB are refused" in out


# ---------------------------------------------------------------- 12. the JSON schema


def test_schema_is_valid_json_schema(p: Project) -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert {"syncs", "destinations", "traits", "include"} <= set(schema["properties"])
    sync = schema["$defs"]["SyncSpec"]
    assert sync["additionalProperties"] is False
    assert sync["properties"]["mode"]["enum"] == ["upsert", "update", "insert", "mirror", "audience"]
    assert "from" in sync["properties"]


def test_schema_comment_line_still_loads(p: Project) -> None:
    write(p, "# yaml-language-server: $schema=https://example.com/activation.schema.json\n" + GOOD)
    assert p.json("validate")["ok"] is True


# ---------------------------------------------------------------- 13, 14. traits


def test_trait_cycle_is_named(p: Project) -> None:
    text = GOOD.replace(
        """  engagement:
    entity: user
    score:
      ltv: {weight: 1.0, points: [[0, 1], [100, 3]]}
      seats: {weight: 0.5, points: [[3, 2]]}
""",
        """  a:
    entity: user
    sql: "select user_id, b + 1 as a from {{ ref('b') }}"
  b:
    entity: user
    sql: "select user_id, a + 1 as b from {{ ref('a') }}"
""",
    )
    write(p, text)
    out = both(p)
    assert "cycle" in out and ("trait a -> trait b -> trait a" in out or "trait b -> trait a -> trait b" in out)
    assert f"syncs.yaml:{line_of(text, '  a:')}:" in out or f"syncs.yaml:{line_of(text, '  b:')}:" in out


def test_trait_reading_its_own_entity_is_a_cycle(p: Project) -> None:
    edit(p, "from src.orders group by 1", "from {{ ref('user') }} group by 1")
    out = both(p)
    assert "cycle" in out and "trait ltv" in out and "entity user" in out


def test_score_thresholds_must_ascend(p: Project) -> None:
    text = edit(p, "points: [[0, 1], [100, 3]]", "points: [[100, 3], [0, 1]]")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, '[[100, 3], [0, 1]]')}:" in out
    assert "traits.engagement.score.ltv.points: thresholds must be strictly ascending" in out


# ---------------------------------------------------------------- 15. SQL that would write


@pytest.mark.parametrize(
    "sql, says",
    [
        ("select user_id, sum(amount) as ltv from src.orders group by 1; drop table src.users", "more than one statement"),
        ("delete from src.orders returning user_id, amount as ltv", "not DELETE"),
        ("with gone as (delete from src.orders returning *) select user_id, amount as ltv from gone", "uses DELETE"),
        ("create table x as select user_id, 1 as ltv from src.users", "not CREATE"),
        ("copy (select user_id, 1 as ltv from src.users) to '/tmp/x.csv'", "not COPY"),
        ("attach '/tmp/other.duckdb' as other", "not ATTACH"),
        ("pragma database_list", "not PRAGMA"),
    ],
)
def test_trait_sql_that_would_write_is_refused_before_the_warehouse_sees_it(p: Project, sql: str, says: str) -> None:
    text = edit(p, "select user_id, sum(amount) as ltv from src.orders group by 1", sql)
    out = both(p)
    assert f"syncs.yaml:{line_of(text, sql[:20])}:" in out and "trait ltv" in out and says in out
    assert p.sql("select count(*) from src.orders") == [(60,)], "the warehouse was not touched"


def test_an_audience_condition_that_would_write_is_refused(p: Project) -> None:
    text = edit(p, "ltv >= 100", "ltv >= 100); delete from src.orders where (1=1")
    out = both(p)
    assert f"syncs.yaml:{line_of(text, 'delete from')}:" in out and "audience whales" in out


@pytest.mark.parametrize(
    "sql",
    [
        "select user_id, count(*) as ltv from src.orders where 'drop table' <> '' group by 1 -- delete me",
        'select user_id, count(*) as "update" from src.orders group by 1',
        "/* insert; */ select user_id, sum(amount) as ltv from src.orders group by 1;",
    ],
)
def test_words_in_strings_comments_and_quoted_names_are_not_writes(sql: str) -> None:
    from activation.models.readonly import write_problem

    assert write_problem(sql) is None


def test_a_trait_ending_with_a_semicolon_and_a_comment_runs(p: Project) -> None:
    write(p, "select user_id, sum(amount) as ltv\nfrom src.orders\ngroup by 1; -- the usual ending\n", "traits/ltv.sql")
    edit(p, 'sql: "select user_id, sum(amount) as ltv from src.orders group by 1"', "sql: traits/ltv.sql")
    assert p.json("run")["ok"] is True
    assert {r["ltv"] for r in p.rx.records("users_to_hook").values()} - {None}
