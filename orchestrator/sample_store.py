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
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, overload

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


def _us(value: float) -> int:
    """Whole microseconds, rounded exactly as report.json rounds (`round(x, 6)`)."""
    return round(round(value, 6) * 1_000_000)


class SampleStream:
    """Writes a SampleLog's samples to samples.bin in batches, as they land.

    It reads the log's own columns from where it stopped, so nothing is buffered twice and at most
    BATCH samples (or MAX_DELAY seconds of them) are unwritten at any moment. A write that fails
    (disk full) stops the stream and is kept in `error`: the run goes on, the report refers to no file.
    """

    def __init__(self, path: Path, log: SampleLog, batch: int = BATCH, max_delay: float = MAX_DELAY) -> None:
        self.path = path
        self.log = log
        self.batch = batch
        self.max_delay = max_delay
        self.error: str | None = None
        self._written = 0
        self._defined = [0, 0, 1]
        self._sha = hashlib.sha256()
        self._bytes = 0
        self._file: BinaryIO | None = path.open("wb", buffering=0)
        self._write(HEADER.pack(MAGIC, VERSION, SIZE))

    def landed(self) -> None:
        """Called after each append to the log: writes a batch once it is due."""
        n = len(self.log)
        if n - self._written >= self.batch or self.log.at[n - 1] - self.log.at[self._written] >= self.max_delay:
            self.flush()

    def flush(self) -> None:
        log, start, end = self.log, self._written, len(self.log)
        if self._file is None or start == end:
            return
        out = bytearray(self._texts())
        offset = len(out)
        out.extend(bytes(SIZE * (end - start)))
        pack = RECORD.pack_into
        for i in range(start, end):
            latency, lag = log.latency[i], log.lag[i]
            pack(
                out,
                offset,
                PASSED if log.ok[i] else FAILED,
                log.phase[i],
                log.probe[i],
                log.error[i],
                _us(log.at[i]),
                NO_LATENCY if math.isnan(latency) else min(max(_us(latency), 0), NO_LATENCY - 1),
                NO_LAG if math.isnan(lag) else min(max(_us(lag), NO_LAG + 1), 2**31 - 1),
            )
            offset += SIZE
        self._written = end
        self._write(bytes(out))

    def _texts(self) -> bytes:
        """Records defining every name and error text the log interned since the last batch."""
        out = bytearray()
        for table, texts in enumerate((self.log.probes, self.log.phases, self.log.errors)):
            for i in range(self._defined[table], len(texts)):
                data = texts[i].encode("utf-8", errors="replace")
                out += TEXT.pack(TEXT_KIND, table, 0, i, len(data))
                out += data + bytes(-len(data) % SIZE)
            self._defined[table] = len(texts)
        return bytes(out)

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

    def close(self) -> SampleFile | None:
        """Writes what is left; the file's reference for the report, or None if writing failed."""
        self.flush()
        if self._file is None:
            return None
        self._file.close()
        self._file = None
        return SampleFile(path=self.path.name, sha256=self._sha.hexdigest(), bytes=self._bytes, samples=self._written)


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
    with path.open("rb") as f:
        SAMPLES_FILE_BYTES.check(os.fstat(f.fileno()).st_size, str(path))
        reader = SampleReader(path)
        while chunk := f.read(SIZE * chunk_records):
            if reader.feed(chunk) < len(chunk):
                break  # short only at the end: a torn last record
        if not reader.started:
            raise SampleFileError(f"{path}: too short for a samples file")
    return reader.log


class SampleReader:
    """Reads samples.bin piece by piece into a SampleLog, as it grows: `read_samples` reads a whole file through
    it, `drillctl serve` tails a running drill's file with it (each piece costs only its own records)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.log = SampleLog()
        self.started = False
        self._text: bytearray | None = None
        self._table = self._ident = self._length = 0

    def feed(self, chunk: bytes) -> int:
        """Reads the header and whole records of `chunk`; returns the bytes it used (the rest: a record not yet
        whole, to be given again with what follows it)."""
        path, log, offset = self.path, self.log, 0
        if not self.started:
            if len(chunk) < HEADER.size:
                return 0
            magic, version, size = HEADER.unpack_from(chunk)
            if magic != MAGIC or version != VERSION or size != SIZE:
                raise SampleFileError(f"{path}: not a version {VERSION} samples file")
            self.started, offset = True, HEADER.size
        whole = offset + (len(chunk) - offset) // SIZE * SIZE
        for j, record in enumerate(RECORD.iter_unpack(memoryview(chunk)[offset:whole])):
            if self._text is not None:
                start = offset + j * SIZE
                self._text += chunk[start : start + SIZE]
                if len(self._text) >= self._length:
                    text = bytes(self._text[: self._length]).decode("utf-8", errors="replace")
                    _define(log, self._table, self._ident, text, path)
                    self._text = None
                continue
            kind, phase, probe, error, at, latency, lag = record
            if kind == TEXT_KIND:
                _, self._table, _, self._ident, self._length = TEXT.unpack_from(chunk, offset + j * SIZE)
                if self._length == 0:
                    _define(log, self._table, self._ident, "", path)
                else:
                    self._text = bytearray()
                continue
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
        return whole


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
