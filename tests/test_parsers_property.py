"""Property tests of the parsers: whatever bytes `syncs.yaml` holds, loading either succeeds
or raises ProjectError naming a place; never another exception (a traceback is a bug). And
`${ENV}` references resolve exactly, with every resolved secret scrubbed from output."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from activation.models.compiler import compile_project
from activation.project.loader import ProjectError, load_project
from activation.project.secrets import MissingSecret, redact, resolve_env

GOOD = """\
version: 1
warehouse: {type: duckdb, path: wh.duckdb}
entities:
  user: {table: src.users, key: user_id, identifiers: [email]}
traits:
  ltv: {entity: user, sql: "select user_id, 1 as ltv from src.users"}
  score: {entity: user, score: {ltv: {weight: 1.0, points: [[0, 1], [10, 3]]}}}
audiences:
  whales: {entity: user, where: "ltv >= 100"}
destinations:
  hook: {type: webhook, url: "${HOOK_URL:-http://127.0.0.1:1/x}", batch_size: 50}
syncs:
  users_to_hook:
    from: user
    to: hook
    mode: mirror
    match: {email: email}
    fields: {plan: plan, up: "{{ row.plan | upper }}"}
    max_removal: 10%
"""

KEYS = [
    "version",
    "warehouse",
    "entities",
    "traits",
    "audiences",
    "destinations",
    "syncs",
    "include",
    "vars",
    "type",
    "path",
    "url",
    "table",
    "key",
    "sql",
    "score",
    "weight",
    "points",
    "entity",
    "where",
    "from",
    "to",
    "mode",
    "match",
    "fields",
    "max_removal",
    "schedule",
    "batch_size",
    "user",
    "hook",
    "syncz",
    "mdoe",
    "&a",
    "*a",
    "<<",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["duckdb", "webhook", "mirror", "20%", "${X}", "{{ row.x }}", "{% for %}"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)),
    max_leaves=25,
)


def load_text(text: bytes) -> Any:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "syncs.yaml").write_bytes(text)
        try:
            loaded = load_project(Path(d))
            compile_project(loaded, lambda n: n, lambda n: f'"{n}"', loaded.project.warehouse.type)
            return loaded
        except ProjectError as e:
            assert e.issues and all(str(i).strip() for i in e.issues)
            return e


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_yaml_document_loads_or_is_refused_with_a_reason(doc: Any) -> None:
    buf = io.StringIO()
    YAML(typ="safe", pure=True).dump(doc, buf)
    load_text(buf.getvalue().encode())


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(GOOD) - 1), st.integers(0, 255), st.sampled_from(["flip", "cut", "insert"]))
def test_a_corrupted_valid_file_loads_or_is_refused_with_a_reason(at: int, byte: int, how: str) -> None:
    data = bytearray(GOOD.encode())
    if how == "flip":
        data[at] = byte
    elif how == "cut":
        del data[at:]
    else:
        data.insert(at, byte)
    load_text(bytes(data))


def test_the_valid_file_is_valid() -> None:
    assert not isinstance(load_text(GOOD.encode()), ProjectError)


names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True)


@given(
    st.dictionaries(names, st.text(min_size=4, max_size=30).filter(lambda s: "}" not in s), max_size=4),
    st.lists(
        st.one_of(
            st.text(alphabet="abc/:-_ ", max_size=6),
            names.map(lambda n: "${" + n + "}"),
            st.tuples(names, st.text(alphabet="xyz0", max_size=5)).map(lambda t: f"${{{t[0]}:-{t[1]}}}"),
        ),
        max_size=6,
    ),
)
def test_env_references_resolve_exactly_and_resolved_secrets_are_scrubbed(env: dict[str, str], parts: list[str]) -> None:
    template = "".join(parts)
    expected, missing = [], False
    for part in parts:
        if part.startswith("${") and ":-" in part:
            name, default = part[2:-1].split(":-", 1)
            expected.append(env.get(name, default))
        elif part.startswith("${"):
            name = part[2:-1]
            missing |= name not in env
            expected.append(env.get(name, ""))
        else:
            expected.append(part)
    assume("${" not in "".join(p for p in parts if not p.startswith("${")))
    try:
        got = resolve_env(template, env)
    except MissingSecret:
        assert missing
        return
    assert not missing and got == "".join(expected)
    for name in env:
        if "${" + name + "}" in template:
            assert env[name] not in redact(f"error talking to host with {got}")
