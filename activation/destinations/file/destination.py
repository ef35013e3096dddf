"""File destination: a CSV or JSONL export that always holds exactly the delivered rows.

The whole file is mirrored in memory as {identity: serialized line}, so each batch can be
applied and made durable before it is acknowledged. Batches that only add new identities
are appended (O(batch), so a first load is linear); any other change rewrites the file to
`<path>.tmp` and renames it over the old one, so a crash leaves the old or the new file.
A crash during an append can leave a torn last line; `open()` drops it and truncates it away.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from activation.destinations.base import ConfigError, Destination, DestinationError, IdentityModel, RowOp, RowResult, SyncTarget
from activation.values import to_jsonable

Key = tuple[str, ...]
_NEEDS_QUOTES = re.compile(r'[",\r\n]')
# The file holds what we wrote: a cell may be as large as any value (csv's default limit,
# 128 KiB, would make a big text field unreadable on the next run).
csv.field_size_limit(2**31 - 1)


def _plain(v: Any) -> Any:
    """`json.dumps` default hook: common warehouse types as JSON-able values, by the shared
    rule (activation.values); others fail."""
    if isinstance(v, (dt.datetime, dt.date, dt.time, Decimal, uuid.UUID)):
        return to_jsonable(v)
    raise TypeError(f"a value of type {type(v).__name__} can't be written to a file")


def _dumps(v: Any) -> str:
    # allow_nan=False: NaN/Infinity are not JSON, a consumer would choke on the line.
    return json.dumps(v, default=_plain, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (str, int, float, Decimal)):
        return str(v)
    if isinstance(v, (dict, list, tuple)):
        return _dumps(v)
    return str(_plain(v))


def _csv_line(cells: Sequence[str]) -> str:
    # Hand-rolled rather than csv.writer: it also quotes a bare "\r" (csv.writer with
    # lineterminator "\n" does not, and readers then split the record), and it is faster.
    if len(cells) == 1 and cells[0] == "":
        return '""\n'  # an empty line would read back as no record at all
    return ",".join('"' + c.replace('"', '""') + '"' if _NEEDS_QUOTES.search(c) else c for c in cells) + "\n"


def _parse(text: str, fmt: str, ncells: int | None) -> Any:
    if fmt == "jsonl":
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        return obj
    rows = list(csv.reader([text], strict=True))
    if len(rows) != 1 or (ncells is not None and len(rows[0]) != ncells):
        raise ValueError("wrong number of columns")
    return rows[0]


def _scan(f: BinaryIO, fmt: str) -> Iterator[tuple[int, str, Any]]:
    """Yield (end offset, text, parsed) per complete record: CSV cells (header first) or a
    JSON object. An unterminated or unparsable *last* record is a torn append: skipped.
    The same anywhere else is corruption we must not silently drop: ValueError."""
    pos, chunk, quotes, ncells = 0, [], 0, None
    for raw in f:
        pos += len(raw)
        chunk.append(raw)
        if fmt == "csv":
            quotes += raw.count(b'"')
            if quotes % 2:
                continue  # a newline inside a quoted value: the record goes on
        if not raw.endswith(b"\n"):
            return  # only the last line can lack its newline: torn
        data, chunk, quotes = b"".join(chunk), [], 0
        try:
            text = data.decode("utf-8")
            if not text.strip():
                continue
            parsed = _parse(text, fmt, ncells)
        except (ValueError, csv.Error) as e:
            if f.read(1):
                raise ValueError(f"record ending at byte {pos} is not valid {fmt}: {e}") from None
            return
        if ncells is None and fmt == "csv":
            ncells = len(parsed)
        yield pos, text, parsed


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); best effort where directories can't be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_file_records(path: str | os.PathLike[str], format: str, match_fields: Sequence[str] | None = None) -> dict[tuple, dict]:
    """The rows in an exported file keyed by identity (default: the first column, where
    match fields go). CSV values come back as the strings written; a torn tail is ignored."""
    records: dict[tuple, dict] = {}
    header: list[str] | None = None
    with open(path, "rb") as f:
        for _, _, rec in _scan(f, format):
            if format == "csv":
                if header is None:
                    header = rec
                    continue
                rec = dict(zip(header, rec, strict=False))
            keys = match_fields or list(rec)[:1]
            records[tuple(rec.get(m) for m in keys)] = rec
    return records


class _RowError(Exception):
    pass


class FileDestination(Destination):
    identity_model: ClassVar[IdentityModel] = "record"  # the file keys a line by its match columns, exactly
    type: ClassVar[str] = "file"
    # Bigger than the API default: any batch that changes existing rows rewrites the file.
    max_batch_size: ClassVar[int] = 50_000
    _is_open = False  # open() loaded the file into memory; close() dropped it

    def check_target(self, target: SyncTarget) -> None:
        super().check_target(target)
        if not target.match_fields:
            raise ConfigError(f"sync {target.sync!r}: a file destination needs `match:` to identify rows, e.g. match: {{email: email}}")

    def open(self, target: SyncTarget) -> None:
        self.check_target(target)  # without match fields every row would share one identity
        self._fmt: str = self.spec.format
        self._path = (Path(self.project_dir) / Path(self.spec.path).expanduser()).resolve()
        self._tmp = self._path.with_name(self._path.name + ".tmp")
        self._match = list(target.match_fields)
        self._cols = list(dict.fromkeys([*self._match, *target.fields]))
        self._rows: dict[Key, str] = {}
        self._dirty = False  # the file's layout differs from memory: next push rewrites
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp.unlink(missing_ok=True)  # left by a crashed rewrite; uploaders may see it
            if self._path.exists():
                self._load()
            else:
                self._rewrite()  # an empty delivered set is still a file (header only)
        except OSError as e:
            raise DestinationError(f"file destination {self.name!r}: {e}") from e
        self._is_open = True

    def _load(self) -> None:
        header, end, reorder = None, 0, False
        with open(self._path, "rb") as f:
            try:
                for end, text, rec in _scan(f, self._fmt):  # noqa: B007 - the last line's end is read after the loop
                    if self._fmt == "jsonl":
                        key = tuple(_dumps(rec.get(m)) for m in self._match)
                    elif header is None:
                        header = rec
                        missing = [m for m in self._match if m not in header]
                        if missing:
                            raise ValueError(f"its header lacks match field(s) {missing}")
                        self._cols += [h for h in header if h not in self._cols]
                        self._dirty = reorder = header != self._cols
                        continue
                    else:
                        cells = dict(zip(header, rec, strict=False))
                        key = tuple(cells[m] for m in self._match)
                        if reorder:  # columns moved: re-encode in the new order
                            text = _csv_line([cells.get(c, "") for c in self._cols])
                    self._dirty |= key in self._rows  # a duplicate: rewrite it away
                    self._rows[key] = text
            except ValueError as e:
                raise DestinationError(f"can't read existing file {self._path}: {e}; fix or remove it", retryable=False) from None
        if self._fmt == "csv" and header is None:
            self._dirty = True  # no (complete) header yet
        if end < self._path.stat().st_size:
            os.truncate(self._path, end)  # drop the torn tail before anything is appended

    def _identity(self, values: dict[str, Any] | None) -> Key | None:
        if not values or any(values.get(m) is None for m in self._match):
            return None
        enc = _cell if self._fmt == "csv" else _dumps
        return tuple(enc(values[m]) for m in self._match)

    def _encode(self, values: dict[str, Any], base: str | None) -> str:
        """The line for `values`, merged over the existing line `base` (an update)."""
        try:
            if self._fmt == "csv":
                cells = dict(zip(self._cols, next(csv.reader([base])), strict=False)) if base else {}
                cells.update((k, _cell(v)) for k, v in values.items())
                return _csv_line([cells.get(c, "") for c in self._cols])
            obj = {**json.loads(base), **values} if base else dict(values)
            return _dumps({**{c: obj[c] for c in self._cols if c in obj}, **obj}) + "\n"
        except (TypeError, ValueError):
            for k, v in values.items():  # the slow path, only to name the culprit
                try:
                    _cell(v) if self._fmt == "csv" else _dumps(v)
                except (TypeError, ValueError) as e:
                    raise _RowError(f"field {k!r}: {e}") from None
            raise _RowError("the row can't be serialized") from None

    def _apply(self, op: RowOp, undo: dict[Key, str | None]) -> None:
        # An op touches the line of its own identity only: an identity change writes the new
        # line, and the core removes the old one once no row maps to it.
        try:
            key = self._identity(op.values)
        except (TypeError, ValueError) as e:
            raise _RowError(f"match field(s) {self._match}: {e}") from None
        if key is None:
            what = "can't find the row" if op.kind == "remove" else "must all have a value"
            raise _RowError(f"no value for match field(s) {self._match}: {what}")
        # update merges into the line held (a rejected row changes nothing: encoded first)
        line = None if op.kind == "remove" else self._encode(op.values, self._rows.get(key) if op.kind == "update" else None)
        undo.setdefault(key, self._rows.get(key))
        self._put(key, line)

    def _put(self, key: Key, line: str | None) -> None:
        if line is None:
            self._rows.pop(key, None)
        else:
            self._rows[key] = line

    def push(self, target: SyncTarget, ops: list[RowOp]) -> list[RowResult]:
        if not self._is_open:
            self.open(target)  # never write from an empty memory: that would wipe the file
        if self._fmt == "csv":  # new columns first, so undo snapshots are taken after widening
            extra = list(dict.fromkeys(k for op in ops for k in op.values if k not in self._cols))
            if extra:
                self._cols += extra
                pad = "," * len(extra)
                self._rows = {k: v.rstrip("\r\n") + pad + "\n" for k, v in self._rows.items()}
                self._dirty = True
        else:
            self._cols += dict.fromkeys(k for op in ops for k in op.values if k not in self._cols)
        undo: dict[Key, str | None] = {}  # identity -> its line before this batch
        results = []
        for op in ops:
            try:
                self._apply(op, undo)
                results.append(RowResult(key=op.key, ok=True))
            except _RowError as e:
                results.append(RowResult(key=op.key, ok=False, error=str(e)))
        changed = [k for k, before in undo.items() if self._rows.get(k) != before]
        if not changed and not self._dirty:
            return results  # e.g. a resent batch: already on disk
        try:
            if not self._dirty and all(undo[k] is None for k in changed):
                self._append("".join(self._rows[k] for k in changed))
            else:
                self._rewrite()
        except OSError as e:
            for k, before in undo.items():  # the batch is not acknowledged: forget it
                self._put(k, before)
            raise DestinationError(f"writing {self._path}: {e}") from e
        return results

    def _append(self, text: str) -> None:
        size = self._path.stat().st_size
        try:
            with open(self._path, "a", encoding="utf-8", newline="") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            os.truncate(self._path, size)  # e.g. disk full: don't leave half a batch
            raise

    def _rewrite(self) -> None:
        with open(self._tmp, "w", encoding="utf-8", newline="") as f:
            if self._fmt == "csv":
                f.write(_csv_line(self._cols))
            f.writelines(self._rows.values())
            f.flush()
            os.fsync(f.fileno())
        os.replace(self._tmp, self._path)
        _fsync_dir(self._path.parent)
        self._dirty = False

    def close(self) -> None:
        self._rows, self._is_open = {}, False  # all on disk already; free the memory
