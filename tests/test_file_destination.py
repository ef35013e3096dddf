"""File destination: the file always equals the delivered set, and survives crashes."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activation.destinations.base import ConfigError, DestinationError, RowOp, SyncTarget
from activation.destinations.file.destination import FileDestination, read_file_records
from activation.destinations.file.spec import FileDestinationSpec

FIELDS = ["email", "name", "score"]
FORMATS = pytest.mark.parametrize("fmt", ["csv", "jsonl"])


def target(match: list[str] | None = None, fields: list[str] = FIELDS) -> SyncTarget:
    return SyncTarget(sync="s", mode="mirror", match_fields=["email"] if match is None else match, fields=fields)


def dest(project: Path, fmt: str, t: SyncTarget | None = None) -> FileDestination:
    d = FileDestination("out", FileDestinationSpec(type="file", path=f"out/x.{fmt}", format=fmt), str(project))
    d.open(t or target())
    return d


def op(kind: str, email: str | None, previous: str | None = None, **values: Any) -> RowOp:
    vals = ({"email": email} if email is not None else {}) | values
    return RowOp(kind=kind, key=str(email or previous), values=vals, previous=None if previous is None else {"email": previous})


def up(email: str, **values: Any) -> RowOp:
    return op("upsert", email, **values)


def cell(v: Any) -> str:  # how the CSV is documented to render a value
    return "" if v is None else ("true" if v else "false") if isinstance(v, bool) else str(v)


def expected(model: dict[str, dict], fmt: str) -> dict[tuple, dict]:
    if fmt == "jsonl":
        return {(e,): row for e, row in model.items()}
    return {(e,): {f: cell(row.get(f)) for f in FIELDS} for e, row in model.items()}


def records(project: Path, fmt: str) -> dict[tuple, dict]:
    return read_file_records(project / f"out/x.{fmt}", fmt, ["email"])


def push_ok(d: FileDestination, ops: list[RowOp]) -> None:
    assert all(r.ok and r.dest_id is None for r in d.push(target(), ops))


def no_rewrites(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*a: Any) -> None:
        raise AssertionError("the file was rewritten, not appended to")

    monkeypatch.setattr(os, "replace", fail)


@FORMATS
def test_first_batch_creates_file_then_appends(tmp_path: Path, fmt: str, monkeypatch) -> None:
    d = dest(tmp_path, fmt)
    path = tmp_path / f"out/x.{fmt}"
    assert path.exists() and records(tmp_path, fmt) == {}  # an empty set is still a file
    push_ok(d, [up("a@x", name="A", score=1), up("b@x", name="B")])
    no_rewrites(monkeypatch)  # only new identities from here on: must be pure appends
    push_ok(d, [up("c@x", score=3, name="C")])
    model = {
        "a@x": {"email": "a@x", "name": "A", "score": 1},
        "b@x": {"email": "b@x", "name": "B"},
        "c@x": {"email": "c@x", "name": "C", "score": 3},
    }
    assert records(tmp_path, fmt) == expected(model, fmt)
    first = path.read_text().splitlines()[0]
    if fmt == "csv":
        assert first == "email,name,score"
    else:
        assert list(json.loads(path.read_text().splitlines()[-1])) == FIELDS  # stable key order


@FORMATS
def test_update_merge_identity_change_and_remove(tmp_path: Path, fmt: str) -> None:
    d = dest(tmp_path, fmt)
    push_ok(d, [up("a@x", name="A", score=1), up("b@x", name="B", score=2), up("c@x", name="C")])
    push_ok(d, [op("update", "a@x", score=10)])  # merges: name kept
    # an email change: the core writes the row whole under its new identity and removes the
    # old one (once no row maps to it); an op never touches another identity's line
    push_ok(d, [op("update", "b2@x", previous="b@x", name="B", score=20), op("remove", "b@x")])
    push_ok(d, [op("update", "new@x", name="N")])  # update of an absent row creates it
    push_ok(d, [op("remove", "c@x"), op("remove", "new@x"), op("remove", "gone@x")])  # removing what is gone succeeds
    model = {"a@x": {"email": "a@x", "name": "A", "score": 10}, "b2@x": {"email": "b2@x", "name": "B", "score": 20}}
    assert records(tmp_path, fmt) == expected(model, fmt)


@FORMATS
def test_later_op_in_a_batch_wins_and_resend_is_harmless(tmp_path: Path, fmt: str, monkeypatch) -> None:
    d = dest(tmp_path, fmt)
    batch = [up("a@x", name="1"), up("a@x", name="2"), op("insert", "b@x", name="B")]
    push_ok(d, batch)
    body = (tmp_path / f"out/x.{fmt}").read_bytes()
    push_ok(d, batch)  # resent after a crash before the runner recorded it
    d.close()
    no_rewrites(monkeypatch)  # nothing changes, so nothing is written at all
    d = dest(tmp_path, fmt)
    push_ok(d, batch)
    assert (tmp_path / f"out/x.{fmt}").read_bytes() == body
    assert records(tmp_path, fmt) == expected({"a@x": {"email": "a@x", "name": "2"}, "b@x": {"email": "b@x", "name": "B"}}, fmt)


@FORMATS
def test_torn_trailing_line_is_dropped_on_open(tmp_path: Path, fmt: str) -> None:
    d = dest(tmp_path, fmt)
    push_ok(d, [up("a@x", name="A")])
    d.close()
    path = tmp_path / f"out/x.{fmt}"
    good = path.read_bytes()
    torn = b'{"email":"b@x","na' if fmt == "jsonl" else b'b@x,"half a\nvalue'
    with open(path, "ab") as f:  # what a crash in the middle of an append leaves
        f.write(torn)
    d = dest(tmp_path, fmt)
    assert path.read_bytes() == good  # truncated before anything is appended after it
    push_ok(d, [up("c@x", name="C")])
    assert records(tmp_path, fmt) == expected({"a@x": {"email": "a@x", "name": "A"}, "c@x": {"email": "c@x", "name": "C"}}, fmt)


@FORMATS
def test_garbage_in_the_middle_is_an_error_not_silently_dropped(tmp_path: Path, fmt: str) -> None:
    d = dest(tmp_path, fmt)
    push_ok(d, [up("a@x", name="A")])
    path = tmp_path / f"out/x.{fmt}"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([*lines[:-1], '{"broken\n' if fmt == "jsonl" else "x,y\n", lines[-1]]))
    with pytest.raises(DestinationError, match="fix or remove"):
        dest(tmp_path, fmt)


@FORMATS
def test_failed_write_is_not_acknowledged(tmp_path: Path, fmt: str, monkeypatch) -> None:
    d = dest(tmp_path, fmt)
    push_ok(d, [up("a@x", name="A"), up("b@x", name="B")])
    before = (tmp_path / f"out/x.{fmt}").read_bytes()

    def crash(*a: Any) -> None:
        raise OSError("disk on fire")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", crash)
        with pytest.raises(DestinationError, match="disk on fire"):
            d.push(target(), [op("remove", "a@x"), up("b@x", name="B2")])
    assert (tmp_path / f"out/x.{fmt}").read_bytes() == before  # old file intact
    push_ok(d, [op("update", "a@x", score=1)])  # a rewrite: memory forgot the failed batch too
    assert records(tmp_path, fmt) == expected({"a@x": {"email": "a@x", "name": "A", "score": 1}, "b@x": {"email": "b@x", "name": "B"}}, fmt)


@FORMATS
def test_tricky_values_round_trip(tmp_path: Path, fmt: str) -> None:
    d = dest(tmp_path, fmt)
    names = ["ünï©ødé 👋", "a,b", 'say "hi"', "two\nlines", "cr\ronly", "crlf\r\n", " pad ", ""]
    push_ok(d, [up(f'{i},"e"\n@x', name=n, score=True) for i, n in enumerate(names)])
    d.close()
    d = dest(tmp_path, fmt)  # and they load back as the same identities
    push_ok(d, [op("update", '0,"e"\n@x', score=None)])
    model = {f'{i},"e"\n@x': {"email": f'{i},"e"\n@x', "name": n, "score": True} for i, n in enumerate(names)}
    model['0,"e"\n@x']["score"] = None
    assert records(tmp_path, fmt) == expected(model, fmt)
    if fmt == "csv":  # and any standard reader agrees
        with open(tmp_path / "out/x.csv", newline="", encoding="utf-8") as f:
            assert [r["name"] for r in csv.DictReader(f)] == names


def test_csv_value_rendering(tmp_path: Path) -> None:
    d = dest(tmp_path, "csv", target(fields=["email", "flag", "tags", "none"]))
    push_ok(d, [RowOp(kind="upsert", key="k", values={"email": "a@x", "flag": False, "tags": {"a": [1, "é"]}, "none": None})])
    assert (tmp_path / "out/x.csv").read_text(encoding="utf-8").splitlines() == ["email,flag,tags,none", 'a@x,false,"{""a"":[1,""é""]}",']


@FORMATS
def test_unserializable_value_rejects_only_that_row(tmp_path: Path, fmt: str) -> None:
    d = dest(tmp_path, fmt)
    res = d.push(target(), [up("a@x", name=b"bytes"), up("b@x", name="B"), up("c@x", score=float("nan"))])
    assert [r.ok for r in res] == [False, True, fmt == "csv"]  # NaN is not JSON
    assert "'name'" in res[0].error and "bytes" in res[0].error
    assert ("b@x",) in records(tmp_path, fmt) and ("a@x",) not in records(tmp_path, fmt)


@FORMATS
def test_changed_columns_rewrite_the_file(tmp_path: Path, fmt: str) -> None:
    push_ok(dest(tmp_path, fmt), [up("a@x", name="A")])
    d = dest(tmp_path, fmt, target(fields=["email", "score", "name"]))
    push_ok(d, [up("b@x", score=2, name="B", extra="E")])
    recs = records(tmp_path, fmt)
    assert recs[("b@x",)]["extra"] == "E" and recs[("a@x",)]["name"] == "A"
    if fmt == "csv":
        assert (tmp_path / "out/x.csv").read_text().splitlines()[0] == "email,score,name,extra"


def test_missing_match_fields_is_a_config_error(tmp_path: Path) -> None:
    d = FileDestination("out", FileDestinationSpec(type="file", path="x.csv"), str(tmp_path))
    with pytest.raises(ConfigError, match="needs `match:`"):
        d.check_target(target(match=[]))
    d.check_target(target())


# ------------------------------------------------------------ against a reference model

emails = st.sampled_from(["a@x", "b@x", 'c,"q"@x', "d\n@x"])
maybe_fields = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(st.sampled_from('ab,"\n\ré 😀'), max_size=4),
        "score": st.one_of(st.none(), st.integers(-5, 5), st.booleans()),
    },
)
ops_st = st.builds(
    lambda kind, email, prev, vals: op(kind, email, prev, **vals),
    st.sampled_from(["upsert", "insert", "update", "remove"]),
    emails,
    st.one_of(st.none(), emails),
    maybe_fields,
)


def apply_model(model: dict[str, dict], o: RowOp) -> None:
    """An op acts on its own identity only (`previous` says what was delivered there; an
    identity change is a write of the new identity and a removal of the old, by the core)."""
    email = o.values.get("email")
    if o.kind == "remove":
        model.pop(email, None)
        return
    base = (model.get(email) or {}) if o.kind == "update" else {}
    model[email] = {**base, **o.values}


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(fmt=st.sampled_from(["csv", "jsonl"]), batches=st.lists(st.tuples(st.lists(ops_st, max_size=6), st.booleans()), max_size=6))
def test_file_equals_reference_model(fmt: str, batches: list[tuple[list[RowOp], bool]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project, model = Path(tmp), {}
        d = dest(project, fmt)
        for ops, reopen in batches:
            push_ok(d, ops)
            for o in ops:
                apply_model(model, o)
            assert records(project, fmt) == expected(model, fmt)
            if reopen:  # a new run starts from what is on disk
                d.close()
                d = dest(project, fmt)
