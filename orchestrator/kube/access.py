"""How drillctl reaches a cluster, by kubectl's rules.

The kubeconfig is `--kubeconfig`, else `$KUBECONFIG` (a colon-separated list, merged), else
`~/.kube/config`; when none exists and drillctl runs in a pod, the pod's service account.
The context is `--context`, else the drill's, else the kubeconfig's current context; the
namespace is `--namespace`, else the drill's, else the context's, else `default`.

Undo records carry the kubeconfig and context they were made with, so `drillctl recover`
and the watchdog reach the same cluster from the record alone (`connect` caches per pair).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from orchestrator.bounded_io import content_length, read_stream
from orchestrator.errors import BackendError, PreflightError
from orchestrator.limits import KUBE_ANSWER_BYTES
from orchestrator.model.spec import KubernetesTargets

T = TypeVar("T")

IN_CLUSTER = "in-cluster"
"""The context name recorded when drillctl runs in a pod with its service account."""
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class KubeAccess:
    """What the user asked for (flags, environment, drill); `connect` turns it into a connection."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    confirmed: bool = False
    """`--yes`: the user confirmed a run in a protected context."""
    limits: KubernetesTargets = field(default_factory=KubernetesTargets, compare=False)
    """The drill's `targets.kubernetes` (blast radius, protected contexts); defaults when it has none."""
    horizon: float = 0.0
    """Longest the run may last (baseline + faults + recovery), seconds: bounds `drillctl.io/expires-at`."""

    def merged_with(self, context: str | None, namespace: str | None) -> KubeAccess:
        """Flags win over the drill: the drill's values only fill what the command line left open."""
        return KubeAccess(
            self.kubeconfig,
            self.context or context,
            self.namespace or namespace,
            self.request_timeout,
            self.confirmed,
            self.limits,
            self.horizon,
        )


@dataclass(frozen=True)
class KubeConnection:
    api: client.ApiClient
    kubeconfig: str | None
    """The kubeconfig path(s) used, None in-cluster; journaled in undo records."""
    context: str
    namespace: str
    server: str
    request_timeout: float

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one blocking client call in a worker thread, with a per-request timeout and a deadline.

        Errors become BackendError carrying the HTTP status (`status_of` reads it back).
        """
        kwargs.setdefault("_request_timeout", self.request_timeout)
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), self.request_timeout + 2.0)
        except ApiException as e:
            raise KubeApiError(e.status or 0, f"{e.status} {e.reason}: {_message(e)}") from e
        except (HTTPError, OSError) as e:
            raise BackendError(f"Kubernetes API at {self.server} unreachable: {e}") from e
        except TimeoutError as e:
            raise BackendError(f"Kubernetes API at {self.server}: no answer in {self.request_timeout:g}s") from e

    async def call_json(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Like `call`, but the object as the server sent it (camelCase JSON), as undo records hold it."""

        def fetch(*args: Any, **kwargs: Any) -> bytes:
            response = fn(*args, _preload_content=False, **kwargs)
            return read_answer(response, endpoint(response, self.server))

        data = await self.call(fetch, *args, **kwargs)
        try:
            document = json.loads(data)
        except (ValueError, RecursionError) as e:
            raise BackendError(f"Kubernetes API at {self.server}: answer is not JSON: {e}") from e
        if not isinstance(document, dict):
            raise BackendError(f"Kubernetes API at {self.server}: expected an object, got {type(document).__name__}")
        return document


class KubeApiError(BackendError):
    """The API server answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_answer(response: Any, where: str) -> bytes:
    """A urllib3 response's body within KUBE_ANSWER_BYTES (AnswerTooLarge naming `where`, its URL); a refused
    answer's connection is dropped, not reused with the rest of the body in it."""
    try:
        return read_stream(response, KUBE_ANSWER_BYTES, where, content_length(response.headers.get("Content-Length")))
    except BackendError:
        response.close()
        raise
    finally:
        response.release_conn()


def endpoint(response: Any, server: str) -> str:
    """The URL a urllib3 response answers (it knows only its path)."""
    return server.rstrip("/") + str(getattr(response, "url", None) or "")


def bounded(api: client.ApiClient) -> client.ApiClient:
    """The client, reading every answer it decodes itself (`_preload_content`, the default) within KUBE_ANSWER_BYTES.

    The generated client reads a whole body at once (`RESTResponse.read`); every call goes through
    `rest_client.request`, so each response it returns gets a bounded `read` instead.
    """
    rest = api.rest_client
    send: Callable[..., Any] = rest.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        answer = send(method, url, *args, **kwargs)
        answer.read = functools.partial(_read_once, answer, url)
        return answer

    rest.request = request  # type: ignore[method-assign]
    return api


def _read_once(answer: Any, url: str) -> bytes:
    if answer.data is None:
        answer.data = read_answer(answer.response, url)
    return bytes(answer.data)


def status_of(error: BaseException) -> int | None:
    return error.status if isinstance(error, KubeApiError) else None


def kubeconfig_path(explicit: str | None) -> str:
    return explicit or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")


def connect(access: KubeAccess) -> KubeConnection:
    """Load the configuration (no network call); raise PreflightError naming what is wrong."""
    return _connect(access.kubeconfig, access.context, access.namespace, access.request_timeout)


@functools.lru_cache(maxsize=16)
def _connect(kubeconfig: str | None, context: str | None, namespace: str | None, timeout: float) -> KubeConnection:
    path = kubeconfig_path(kubeconfig)
    if not any(Path(p).expanduser().is_file() for p in path.split(os.pathsep) if p):
        if kubeconfig is None and context in (None, IN_CLUSTER) and SERVICE_ACCOUNT_NAMESPACE.is_file():
            return _in_cluster(namespace, timeout)
        raise PreflightError(f"no kubeconfig at {path} (set --kubeconfig or KUBECONFIG)")
    try:
        contexts, current = config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    except ConfigException as e:
        raise PreflightError(f"kubeconfig {path}: {e}") from e
    chosen = next((c for c in contexts if c["name"] == context), None) if context else current
    if chosen is None:
        known = ", ".join(sorted(c["name"] for c in contexts)) or "none"
        raise PreflightError(f"context {context!r} is not in kubeconfig {path} (known contexts: {known})")
    configuration = client.Configuration()
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=chosen["name"], client_configuration=configuration, persist_config=False
        )
    except ConfigException as e:
        raise PreflightError(f"kubeconfig {path}, context {chosen['name']}: {e}") from e
    resolved = namespace or chosen.get("context", {}).get("namespace") or "default"
    return KubeConnection(
        api=bounded(client.ApiClient(configuration)),
        kubeconfig=path,
        context=chosen["name"],
        namespace=resolved,
        server=configuration.host,
        request_timeout=timeout,
    )


def _in_cluster(namespace: str | None, timeout: float) -> KubeConnection:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException as e:
        raise PreflightError(f"in-cluster configuration: {e}") from e
    return KubeConnection(
        api=bounded(client.ApiClient(configuration)),
        kubeconfig=None,
        context=IN_CLUSTER,
        namespace=namespace or SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip(),
        server=configuration.host,
        request_timeout=timeout,
    )


def _message(error: ApiException) -> str:
    """The API's own message from a Status body, else the raw body."""
    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        return str(error.body)[:300]
    return str(body.get("message", error.body))[:300]


def recorded(conn: KubeConnection) -> dict[str, Any]:
    """What an undo record keeps to reach the same cluster again (`reconnect`)."""
    return {
        "kubeconfig": conn.kubeconfig,
        "context": conn.context,
        "namespace": conn.namespace,
        "request_timeout": conn.request_timeout,
    }


def reconnect(state: Mapping[str, Any]) -> KubeConnection:
    """The connection an undo record was made with, from the record alone (recover, the watchdog)."""
    timeout = float(state.get("request_timeout", DEFAULT_REQUEST_TIMEOUT))
    return _connect(state.get("kubeconfig"), state.get("context"), state.get("namespace"), timeout)
