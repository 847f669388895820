"""The `nats` workload client: each key a subject of one JetStream stream, written by a publish the stream
acknowledges, read back by walking the stream's messages on that subject.

A write is acknowledged when the stream leader's PubAck came back (after the stream's replicas stored it,
for a replicated stream): losing acknowledged publishes is what a leader-loss drill looks for. Every
message on a key's subject is one of its values, so the checker sees a key holding several.

Outcomes: no connection ever made, no responders (no stream leader to store it) or an error the stream
answered fail; a timeout or a connection lost after the publish was handed over leaves a write unknown
(nats-py resends buffered publishes after reconnecting, so it may still be stored).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from orchestrator.model.operations import Operation
from orchestrator.model.workload_clients import NatsOptions
from orchestrator.workloads.base import ClientContext, Result

if TYPE_CHECKING:
    import nats.aio.client
    import nats.js

MAX_VALUES = 1000
"""Most messages one read collects on a key's subject (a register written by a drill holds a few)."""
UNSAFE = str.maketrans({".": "_", "*": "_", ">": "_", " ": "_"})
"""Characters a key may hold that a subject token may not."""


class NatsClient:
    def __init__(self, options: NatsOptions, context: ClientContext) -> None:
        import nats  # noqa: F401 - when the client is built, not at its first operation (holds the loop)

        self._options = options
        self._timeout = context.timeout
        self._connection: nats.aio.client.Client | None = None
        self._stream: nats.js.JetStreamContext | None = None
        self._connecting = asyncio.Lock()

    async def _js(self) -> nats.js.JetStreamContext:
        import nats

        async with self._connecting:
            if self._stream is None:
                self._connection = await nats.connect(
                    servers=self._options.servers,
                    connect_timeout=self._timeout,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.1,
                    error_cb=_quiet,
                    disconnected_cb=_nothing,
                    reconnected_cb=_nothing,
                )
                self._stream = self._connection.jetstream(timeout=self._timeout)
            return self._stream

    async def invoke(self, operation: Operation) -> Result:
        import nats.errors
        import nats.js.errors

        write = operation.kind == "write"
        subject = self._options.subject_prefix + operation.key.translate(UNSAFE)
        sent = False
        try:
            async with asyncio.timeout(self._timeout):
                js = await self._js()
                sent = True
                if write:
                    payload = (operation.value or "").encode()
                    await js.publish(subject, payload, timeout=self._timeout, stream=self._options.stream)
                    return Result("ok")
                return Result("ok", await self._values(js, subject))
        except (nats.js.errors.NoStreamResponseError, nats.errors.NoRespondersError) as e:
            return Result("fail", error=f"no stream leader answered: {type(e).__name__}")
        except nats.js.errors.APIError as e:
            return Result("fail", error=f"stream refused: {e}")
        except (TimeoutError, nats.errors.TimeoutError):
            return Result("unknown" if write and sent else "fail", error=f"timeout after {self._timeout:g}s")
        except (nats.errors.Error, OSError) as e:
            return Result("unknown" if write and sent else "fail", error=f"{type(e).__name__}: {e}")

    async def _values(self, js: nats.js.JetStreamContext, subject: str) -> tuple[str, ...]:
        """Every message on the subject, oldest first (STREAM.MSG.GET next_by_subj from each sequence on)."""
        import nats.js.errors

        values: list[str] = []
        seq = 1
        while len(values) < MAX_VALUES:
            try:
                message = await js.get_msg(self._options.stream, seq=seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                break
            values.append((message.data or b"").decode("utf-8", errors="replace"))
            seq = (message.seq or seq) + 1
        return tuple(values)

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._timeout):
                    await self._connection.close()


async def _quiet(error: Exception) -> None:
    """Connection errors show in the operations' outcomes; nats-py would print each to stderr."""


async def _nothing() -> None:
    """A lost or regained connection shows in the operations' outcomes."""


class NatsClientType:
    options = NatsOptions

    def build(self, options: Any, context: ClientContext) -> NatsClient:
        return NatsClient(options, context)


CLIENT = NatsClientType()
