"""samples.bin: every sample of a run, streamed to disk as it lands, and read back.

Layout, little-endian, in 24-byte records after a 24-byte header (a reader needs only `struct`):

    header  "<8sHH12x"   magic b"DRLSMPL\\n", version 1, record size 24
    sample  "<BBHIqIi"   kind (0 failed, 1 passed), phase id, probe id, error id (0: none),
                         at (microseconds since t0, int64), latency (microseconds, uint32;
                         0xFFFFFFFF: none), lag (microseconds, int32; -2**31: none)
    text    "<BBHIq8x"   kind 2, table (0 probe, 1 phase, 2 error), 0, id, length n in bytes;
                         then ceil(n / 24) records of UTF-8 text, zero-padded

Ids index each table in the order its texts appear (errors from 1); a text always comes before
the first sample that uses it. Why this format rather than JSON lines, SQLite or Parquet: fixed
24-byte records are 3-4 times smaller than a JSON row, cost one `struct` pack per sample and
nothing per write beyond an append, and need no library to read; being append-only, a run killed
mid-write leaves at worst a torn last record, which a reader ignores (as it ignores a text cut
short). Times are whole microseconds, as report.json holds them, so a record equals the report's
row. Names and errors are interned (`SampleLog`): an error repeated a million times is written once.
"""

from __future__ import annotations

import hashlib
import math
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from struct import Struct
from typing import Any, BinaryIO, overload

from orchestrator.limits import SAMPLES_FILE_BYTES
from orchestrator.model.timeline import Sample, SampleFile, SampleLog

MAGIC = b"DRLSMPL\n"
VERSION = 1
HEADER = struct.Struct("<8sHH12x")
RECORD = struct.Struct("<BBHIqIi")
TEXT = struct.Struct("<BBHIq8x")
SIZE = RECORD.size
FAILED, PASSED, TEXT_KIND = 0, 1, 2
TABLES = ("probe", "phase", "error")
NO_LATENCY = 0xFFFFFFFF
NO_LAG = -(2**31)
BATCH = 4096
"""Most samples held unwritten; a batch is one write of about 100 KB."""
MAX_DELAY = 0.25
"""Most seconds of run time held unwritten, so that a slow drill loses little when killed and `drillctl serve`
shows a sample well within a second of it landing (four appends a second at most: nothing at any rate)."""
FILE_NAME = "samples.bin"

assert SIZE == TEXT.size == HEADER.size == 24


class SampleFileError(ValueError):
    """samples.bin is not one, or refers to a text it never defined."""


class RecordWriter:
    """An append-only file of fixed records, hashed as written. A write that fails (disk full) closes it and is
    kept in `error`: the run goes on, and the report refers to no file. Shared by samples.bin and operations.bin."""

    def __init__(self, path: Path, header: bytes) -> None:
        self.path = path
        self.error: str | None = None
        self._sha = hashlib.sha256()
        self._bytes = 0
        self._file: BinaryIO | None = path.open("wb", buffering=0)
        self._write(header)

    def _write(self, data: bytes) -> None:
        if self._file is None:
            return
        try:
            self._file.write(data)
        except OSError as e:
            self.error = f"writing {self.path} failed: {e}"
            self._file.close()
            self._file = None
            return
        self._sha.update(data)
        self._bytes += len(data)

    def _finish(self) -> tuple[str, int] | None:
        """Closes the file: its sha256 and size, or None if writing failed."""
        if self._file is None:
            return None
        self._file.close()
        self._file = None
        return self._sha.hexdigest(), self._bytes


def text_records(text: Struct, kind: int, table: int, ident: int, value: str) -> bytes:
    """A text record and the UTF-8 text after it, zero-padded to whole records."""
    data = value.encode("utf-8", errors="replace")
    return text.pack(kind, table, 0, ident, len(data)) + data + bytes(-len(data) % text.size)


@dataclass(frozen=True)
class Text:
    """A text record read back, with its text."""

    table: int
    ident: int
    text: str


def read_records(
    path: Path,
    what: str,
    header: tuple[bytes, int],
    record: Struct,
    text: Struct,
    text_kind: int,
    chunk_records: int = 8192,
) -> Iterator[tuple[Any, ...] | Text]:
    """The records of a file written with RecordWriter, in order: data records as tuples, texts whole.

    A torn last record (a run killed mid-write) and a text cut short are ignored."""
    reader = RecordReader(path, what, header, record, text, text_kind)
    with path.open("rb") as f:
        while chunk := f.read(record.size * chunk_records):
            records, used = reader.feed(chunk)
            yield from records
            if used < len(chunk):
                break  # short only at the end: a torn last record
    if not reader.started:
        raise SampleFileError(f"{path}: too short for a {what} file")


class RecordReader:
    """The records of a file written with RecordWriter from pieces of it in order, as it grows."""

    def __init__(
        self, path: Path, what: str, header: tuple[bytes, int], record: Struct, text: Struct, text_kind: int
    ) -> None:
        self.path, self.what, self.header = path, what, header
        self.record, self.text, self.text_kind = record, text, text_kind
        self.started = False
        self._pending: bytearray | None = None
        self._table = self._ident = self._length = 0

    def feed(self, chunk: bytes) -> tuple[list[tuple[Any, ...] | Text], int]:
        """The records whole in `chunk` (a text once its last record is in), and the bytes used: the rest, a
        record not yet whole, is to be given again with what follows it."""
        size, offset = self.record.size, 0
        out: list[tuple[Any, ...] | Text] = []
        if not self.started:
            if len(chunk) < size:
                return [], 0
            magic, version = self.header
            found, found_version, found_size = struct.unpack_from("<8sHH", chunk)
            if found != magic or found_version != version or found_size != size:
                raise SampleFileError(f"{self.path}: not a version {version} {self.what} file")
            self.started, offset = True, size
        whole = offset + (len(chunk) - offset) // size * size
        for j, row in enumerate(self.record.iter_unpack(memoryview(chunk)[offset:whole])):
            at = offset + j * size
            if self._pending is not None:
                self._pending += chunk[at : at + size]
                if len(self._pending) >= self._length:
                    text = bytes(self._pending[: self._length]).decode("utf-8", errors="replace")
                    out.append(Text(self._table, self._ident, text))
                    self._pending = None
                continue
            if row[0] == self.text_kind:
                _, self._table, _, self._ident, self._length = self.text.unpack_from(chunk, at)
                if self._length == 0:
                    out.append(Text(self._table, self._ident, ""))
                else:
                    self._pending = bytearray()
                continue
            out.append(row)
        return out, whole


class LogStream(RecordWriter, ABC):
    """A log's records streamed in batches as they land, texts first (a text always precedes its first use).

    It reads the log's own columns from where it stopped, so nothing is buffered twice and at most `batch`
    records (or `max_delay` seconds of them) are unwritten at any moment. Subclasses say which text tables
    the log has and how a record packs.
    """

    def __init__(
        self,
        path: Path,
        header: bytes,
        log: Any,
        size: int,
        text: tuple[Struct, int],
        known: list[int],
        batch: int,
        max_delay: float,
    ) -> None:
        super().__init__(path, header)
        self.log = log
        self.batch = batch
        self.max_delay = max_delay
        self._size = size
        self._text = text
        self._written = 0
        self._defined = known
        """Per text table, how many texts a reader knows already (error id 0, none, is never written)."""

    @abstractmethod
    def _tables(self) -> Sequence[list[str]]:
        """The log's text tables in table-id order."""

    @abstractmethod
    def _pack(self, out: bytearray, offset: int, start: int, end: int) -> None:
        """Rows [start, end) of the log into `out` from `offset`, one record each."""

    def landed(self) -> None:
        """Called after each append to the log: writes a batch once it is due."""
        n = len(self.log)
        if n - self._written >= self.batch or self.log.at[n - 1] - self.log.at[self._written] >= self.max_delay:
            self.flush()

    def flush(self) -> None:
        start, end = self._written, len(self.log)
        if self._file is None or start == end:
            return
        out = bytearray(self._texts())
        offset = len(out)
        out.extend(bytes(self._size * (end - start)))
        self._pack(out, offset, start, end)
        self._written = end
        self._write(bytes(out))

    def finished(self) -> tuple[str, str, int, int] | None:
        """Writes what is left and closes the file: its name, sha256, bytes and records; None if writing failed."""
        self.flush()
        done = self._finish()
        return None if done is None else (self.path.name, done[0], done[1], self._written)

    def _texts(self) -> bytes:
        """Records defining every name and error text the log interned since the last batch."""
        out = bytearray()
        text, kind = self._text
        for table, texts in enumerate(self._tables()):
            for i in range(self._defined[table], len(texts)):
                out += text_records(text, kind, table, i, texts[i])
            self._defined[table] = len(texts)
        return bytes(out)


def micros(value: float) -> int:
    """Whole microseconds, rounded exactly as report.json rounds (`round(x, 6)`)."""
    return round(round(value, 6) * 1_000_000)


def latency_field(latency: float) -> int:
    """A latency as stored: whole microseconds within uint32, NO_LATENCY for none (NaN)."""
    return NO_LATENCY if math.isnan(latency) else min(max(micros(latency), 0), NO_LATENCY - 1)


def lag_field(lag: float) -> int:
    """A lag as stored: whole microseconds within int32, NO_LAG for none (NaN)."""
    return NO_LAG if math.isnan(lag) else min(max(micros(lag), NO_LAG + 1), 2**31 - 1)


class SampleStream(LogStream):
    """Writes a SampleLog's samples to samples.bin in batches, as they land."""

    def __init__(self, path: Path, log: SampleLog, batch: int = BATCH, max_delay: float = MAX_DELAY) -> None:
        header = HEADER.pack(MAGIC, VERSION, SIZE)
        super().__init__(path, header, log, SIZE, (TEXT, TEXT_KIND), [0, 0, 1], batch, max_delay)

    def _tables(self) -> Sequence[list[str]]:
        return (self.log.probes, self.log.phases, self.log.errors)

    def _pack(self, out: bytearray, offset: int, start: int, end: int) -> None:
        log, pack = self.log, RECORD.pack_into
        for i in range(start, end):
            pack(
                out,
                offset,
                PASSED if log.ok[i] else FAILED,
                log.phase[i],
                log.probe[i],
                log.error[i],
                micros(log.at[i]),
                latency_field(log.latency[i]),
                lag_field(log.lag[i]),
            )
            offset += SIZE

    def close(self) -> SampleFile | None:
        """Writes what is left; the file's reference for the report, or None if writing failed."""
        done = self.finished()
        return None if done is None else SampleFile(*done)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_samples(path: Path, chunk_records: int = 8192) -> SampleLog:
    """Every whole sample of a samples.bin, in the order written; a torn last record is ignored.

    A file over SAMPLES_FILE_BYTES is refused before anything is read (LimitExceeded).
    """
    SAMPLES_FILE_BYTES.check(path.stat().st_size, str(path))
    reader = SampleReader(path)
    for record in read_records(path, "samples", (MAGIC, VERSION), RECORD, TEXT, TEXT_KIND, chunk_records):
        reader.add(record)
    return reader.log


class SampleReader:
    """Samples into a SampleLog, record by record: `read_samples` reads a whole file through it, `drillctl serve`
    tails a running drill's file with it, piece by piece (each piece costs only its own records)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.log = SampleLog()
        self.records = RecordReader(path, "samples", (MAGIC, VERSION), RECORD, TEXT, TEXT_KIND)

    @property
    def started(self) -> bool:
        return self.records.started

    def feed(self, chunk: bytes) -> int:
        """Adds the samples whole in `chunk`; returns the bytes it used (the rest: a record not yet whole, to be
        given again with what follows it)."""
        records, used = self.records.feed(chunk)
        for record in records:
            self.add(record)
        return used

    def add(self, record: tuple[Any, ...] | Text) -> None:
        log, path = self.log, self.path
        if isinstance(record, Text):
            _define(log, record.table, record.ident, record.text, path)
            return
        kind, phase, probe, error, at, latency, lag = record
        if kind not in (FAILED, PASSED):
            raise SampleFileError(f"{path}: record of unknown kind {kind}")
        if probe >= len(log.probes) or phase >= len(log.phases) or error >= len(log.errors):
            raise SampleFileError(f"{path}: a sample refers to a text never defined")
        log.append_ids(
            probe,
            phase,
            error,
            at / 1e6,
            kind == PASSED,
            math.nan if latency == NO_LATENCY else latency / 1e6,
            math.nan if lag == NO_LAG else lag / 1e6,
        )


def _define(log: SampleLog, table: int, ident: int, text: str, path: Path) -> None:
    tables = (log.probes, log.phases, log.errors)
    if table >= len(tables) or ident != len(tables[table]):
        raise SampleFileError(f"{path}: text {ident} of table {table} out of order")
    log.define(TABLES[table], text)


class StoredSamples(Sequence[Sample]):
    """The samples of a report's samples.bin, read (and checked against the report's sha256) on first use.

    `drillctl report` renders a long run from report.json alone and never touches them; whoever
    needs every sample again (re-analysis, an export) gets them from the file, as a SampleLog.
    """

    def __init__(self, path: Path, expected: SampleFile) -> None:
        self.path = path
        self.expected = expected
        self._log: SampleLog | None = None

    def load(self) -> SampleLog:
        if self._log is None:
            SAMPLES_FILE_BYTES.check(self.path.stat().st_size, str(self.path))
            found = sha256_of(self.path)
            if found != self.expected.sha256:
                raise SampleFileError(f"{self.path}: sha256 {found} is not the report's {self.expected.sha256}")
            self._log = read_samples(self.path)
        return self._log

    def __len__(self) -> int:
        return self.expected.samples

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | Sequence[Sample]:
        return self.load()[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.load())
