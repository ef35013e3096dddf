"""Field values of every awkward type, through a whole run to the webhook and the file
destinations: NULL, NaN and infinities, -0.0, a 1 MB string, NUL and other unicode, time
zones, extreme dates, nested JSON, huge integers, high-precision decimals, blobs, intervals,
UUIDs, lists and structs. Each arrives exactly as documented, and a second run sends nothing
(their row hashes are stable)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import duckdb
from conftest import Project

from activation.destinations.file.destination import read_file_records
from activation_emulators.webhook import WebhookReceiver

HUGE = "x" * 1_000_000
ODD = 'emoji 🎉 rtl שלום combining é nul\x00end "quotes" \\ back, comma\nnewline'
TABLE = f"""
CREATE SCHEMA src;
CREATE TABLE src.things (k VARCHAR, dbl DOUBLE, txt VARCHAR, ts TIMESTAMPTZ, d DATE, js JSON, b BOOLEAN, big HUGEINT,
  dec DECIMAL(38, 10), bl BLOB, iv INTERVAL, u UUID, arr INTEGER[], st STRUCT(a INTEGER, b VARCHAR));
INSERT INTO src.things VALUES
 ('k1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 ('k2', 'NaN', '{HUGE}', '2024-03-10 02:30:00+05:30', '0001-01-01', '{{"a": [1, {{"b": null}}], "c": "é"}}', true,
  170141183460469231731687303715884105727, 12345678901234567890.1234567890, '\\x00\\xFF'::BLOB, INTERVAL 3 DAY,
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', [1, NULL, 3], {{'a': 1, 'b': 'x'}}),
 ('k3', 'Infinity', ?, '1970-01-01 00:00:00+00', '9999-12-31', '[]', false, -1, 1234.56, ''::BLOB, INTERVAL 0 SECOND,
  NULL, [], {{'a': NULL, 'b': NULL}}),
 ('k4', -0.0, '', '2262-04-11 23:47:16+00', '2024-02-29', '"just a string"', NULL, 0, -0.0000000001, NULL, NULL, NULL, NULL, NULL);
"""
FIELDS = "{dbl: dbl, txt: txt, ts: ts, d: d, js: js, b: b, big: big, dec: dec, bl: bl, iv: iv, u: u, arr: arr, st: st}"
YAML = f"""
version: 1
warehouse: {{type: duckdb, path: wh.duckdb}}
entities:
  thing: {{table: src.things, key: k}}
destinations:
  hook: {{type: webhook, url: "${{HOOK_URL}}", max_retries: 0}}
  csv: {{type: file, path: out/things.csv}}
  jsonl: {{type: file, path: out/things.jsonl, format: jsonl}}
syncs:
  to_hook: {{from: thing, to: hook, mode: mirror, match: {{k: k}}, fields: {FIELDS}}}
  to_csv: {{from: thing, to: csv, mode: mirror, match: {{k: k}}, fields: {FIELDS}}}
  to_jsonl: {{from: thing, to: jsonl, mode: mirror, match: {{k: k}}, fields: {FIELDS}}}
"""
EXPECTED = {
    "k1": dict.fromkeys(["arr", "b", "big", "bl", "d", "dbl", "dec", "iv", "js", "st", "ts", "txt", "u"]),
    "k2": {
        "arr": [1, None, 3],
        "b": True,
        "big": 170141183460469231731687303715884105727,
        "bl": "AP8=",
        "d": "0001-01-01",
        "dbl": None,
        "dec": "12345678901234567890.1234567890",
        "iv": 259200.0,
        "js": {"a": [1, {"b": None}], "c": "é"},
        "st": {"a": 1, "b": "x"},
        "ts": "2024-03-09T21:00:00+00:00",
        "txt": HUGE,
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    },
    "k3": {
        "arr": [],
        "b": False,
        "big": -1,
        "bl": "",
        "d": "9999-12-31",
        "dbl": None,
        "dec": 1234.56,
        "iv": 0.0,
        "js": [],
        "st": {"a": None, "b": None},
        "ts": "1970-01-01T00:00:00+00:00",
        "txt": ODD,
        "u": None,
    },
    "k4": {
        "arr": None,
        "b": None,
        "big": 0,
        "bl": None,
        "d": "2024-02-29",
        "dbl": -0.0,
        "dec": -1e-10,
        "iv": None,
        "js": "just a string",
        "st": None,
        "ts": "2262-04-11T23:47:16+00:00",
        "txt": "",
        "u": None,
    },
}


def test_awkward_values_arrive_as_documented_and_hash_stably(tmp_path: Path, rx: WebhookReceiver) -> None:
    root = tmp_path / "p"
    root.mkdir()
    con = duckdb.connect(str(root / "wh.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    con.execute(TABLE, [ODD])
    con.close()
    (root / "syncs.yaml").write_text(textwrap.dedent(YAML))
    p = Project(root, rx)
    first = p.json("run")
    assert [(s["sync"], s["status"], s["acknowledged"]) for s in first["syncs"]] == [
        ("to_hook", "success", 4),
        ("to_csv", "success", 4),
        ("to_jsonl", "success", 4),
    ]
    held = {k: {f: v for f, v in r.items() if f != "k"} for k, r in rx.records("to_hook").items()}
    assert held == EXPECTED
    jsonl = read_file_records(root / "out/things.jsonl", "jsonl", ["k"])
    assert {k[0]: {f: v for f, v in r.items() if f != "k"} for k, r in jsonl.items()} == EXPECTED
    csv_rows = read_file_records(root / "out/things.csv", "csv", ["k"])
    assert csv_rows[("k2",)]["txt"] == HUGE and csv_rows[("k3",)]["txt"] == ODD
    assert csv_rows[("k2",)]["dec"] == "12345678901234567890.1234567890"
    again = p.json("run")
    assert [(s["status"], s["sent"]) for s in again["syncs"]] == [("up_to_date", 0)] * 3
