"""The options of the built-in workload clients: data, checked when a drill loads.

Apart from the clients themselves (`workloads/`), so that `drillctl validate` checks a drill's workload without
importing what its client needs to run (asyncio, aiohttp, psycopg, nats-py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from orchestrator.model.base import Strict

Argv = Annotated[list[str], Field(min_length=1)]


class HttpOptions(Strict):
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", description="base URL; keys are under {url}/kv/")]
    path: str = Field(default="/kv/{key}", description="path of a key under url; {key} is replaced")
    reuse_connections: bool = Field(default=True, description="keep-alive; off: a new connection per operation")


class CommandOptions(Strict):
    write: Argv = Field(description="argv of a write, e.g. [kvctl, set, '{key}', '{value}']")
    read: Argv = Field(description="argv of a read, e.g. [kvctl, get, '{key}']")
    cwd: str | None = Field(default=None, description="where both run, relative to the drill file's folder (default)")
    fail_exit: int = Field(default=1, description="exit code meaning: did not take effect")
    absent_exit: int = Field(default=3, description="exit code of a read of a key that holds nothing")


class PostgresOptions(Strict):
    dsn: Annotated[str, Field(min_length=1, description="libpq conninfo or postgresql:// URI")]
    table: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="created if missing")] = (
        "drillctl_workload"
    )
    synchronous_commit: Literal["on", "off", "local", "remote_write", "remote_apply"] | None = Field(
        default=None, description="set on every connection; default: the server's"
    )
    connections: Annotated[int, Field(ge=1, le=256, description="most connections at once")] = 16


class NatsOptions(Strict):
    servers: Annotated[list[Annotated[str, Field(pattern=r"^nats://[^\s]+$")]], Field(min_length=1)]
    stream: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="an existing stream")]
    subject_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]*\.$", description="the stream's subjects")] = (
        "drill."
    )


BUILT_IN_OPTIONS: dict[str, type[BaseModel]] = {
    "http": HttpOptions,
    "command": CommandOptions,
    "postgres": PostgresOptions,
    "nats": NatsOptions,
}
"""Each built-in client's options, by the `type` a drill names it with (`workloads/registry.py`)."""
