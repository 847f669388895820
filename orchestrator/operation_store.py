"""operations.bin: every operation of a workload (and every value read back), streamed as it lands, and read back.

The same kind of file as samples.bin (`sample_store.py`), in 32-byte little-endian records after a
32-byte header:

    header     "<8sHH20x"    magic b"DRLOPS\\n\\0", version 1, record size 32
    operation  "<BBBxIiqIiI" kind (0 read, 1 write, 2 verify, 3 one more value of the record before),
                             outcome (0 fail, 1 ok, 2 unknown), phase id, key (its number in the key
                             space), value (a write's own index; for reads the index of the write read,
                             -1 absent, -2 a value never written, -3 none), at (microseconds since t0,
                             int64; the intended start), latency (microseconds from `at`, uint32;
                             0xFFFFFFFF: never started), lag (microseconds, int32; -2**31: none), error id
    text       "<BBHIq16x"   kind 4, table (0 phase, 1 error), 0, id, length n in bytes; then
                             ceil(n / 32) records of UTF-8 text, zero-padded

Keys and values are fixed integers, so a record costs one `struct` pack and nothing is interned but phase
names and error texts (bounded as the sample log bounds them). Batches of at most 4,096 operations or one
second of run time go out in one append; a torn last record is ignored.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from pathlib import Path

from orchestrator.limits import OPERATIONS_FILE_BYTES
from orchestrator.model.findings import OperationFile
from orchestrator.model.operations import KINDS, OUTCOMES, OperationLog
from orchestrator.sample_store import (
    BATCH,
    MAX_DELAY,
    NO_LAG,
    NO_LATENCY,
    LogStream,
    SampleFileError,
    Text,
    lag_field,
    latency_field,
    micros,
    read_records,
)

MAGIC = b"DRLOPS\n\0"
VERSION = 1
HEADER = struct.Struct("<8sHH20x")
RECORD = struct.Struct("<BBBxIiqIiI")
TEXT = struct.Struct("<BBHIq16x")
SIZE = RECORD.size
TEXT_KIND = 4
FILE_NAME = "operations.bin"

assert SIZE == TEXT.size == HEADER.size == 32


class OperationStream(LogStream):
    """Writes an OperationLog's records to operations.bin in batches, as they land (as SampleStream does)."""

    def __init__(self, path: Path, log: OperationLog, batch: int = BATCH, max_delay: float = MAX_DELAY) -> None:
        header = HEADER.pack(MAGIC, VERSION, SIZE)
        super().__init__(path, header, log, SIZE, (TEXT, TEXT_KIND), [0, 1], batch, max_delay)

    def _tables(self) -> Sequence[list[str]]:
        return (self.log.phases, self.log.errors)

    def _pack(self, out: bytearray, offset: int, start: int, end: int) -> None:
        log, pack = self.log, RECORD.pack_into
        for i in range(start, end):
            pack(
                out,
                offset,
                log.kind[i],
                log.outcome[i],
                log.phase[i],
                log.key[i],
                log.value[i],
                micros(log.at[i]),
                latency_field(log.latency[i]),
                lag_field(log.lag[i]),
                log.error[i],
            )
            offset += SIZE

    def close(self) -> OperationFile | None:
        """Writes what is left; the file's reference for the report, or None if writing failed."""
        done = self.finished()
        return None if done is None else OperationFile(*done)


def read_operations(path: Path) -> OperationLog:
    """Every whole record of an operations.bin, in the order written; refused over OPERATIONS_FILE_BYTES."""
    log = OperationLog()
    OPERATIONS_FILE_BYTES.check(path.stat().st_size, str(path))
    tables = (log.phases, log.errors)
    for record in read_records(path, "operations", (MAGIC, VERSION), RECORD, TEXT, TEXT_KIND):
        if isinstance(record, Text):
            if record.table >= len(tables) or record.ident != len(tables[record.table]):
                raise SampleFileError(f"{path}: text {record.ident} of table {record.table} out of order")
            log.define(("phase", "error")[record.table], record.text)
            continue
        kind, outcome, phase, key, value, at, latency, lag, error = record
        if kind >= len(KINDS) or outcome >= len(OUTCOMES):
            raise SampleFileError(f"{path}: record of unknown kind {kind} or outcome {outcome}")
        if phase >= len(log.phases) or error >= len(log.errors):
            raise SampleFileError(f"{path}: an operation refers to a text never defined")
        log.append(
            kind,
            outcome,
            phase,
            key,
            value,
            at / 1e6,
            math.nan if latency == NO_LATENCY else latency / 1e6,
            math.nan if lag == NO_LAG else lag / 1e6,
            error,
        )
    return log
