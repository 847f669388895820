"""Live Prometheus metrics of a running drill, so a game day can be watched on the dashboards a team
already has: served for scraping (`drillctl run --metrics-port`) or pushed to a Pushgateway
(`--pushgateway`, for runs that live too briefly or too deep in a cluster to be scraped).

Fed through the same two hooks as the live view: every sample the recorder takes, and every event
the engine reports (phases, faults injected and reverted). The SLA verdicts are set once the report
is judged. Each drill gets a registry of its own: nothing leaks into the process-wide default one.
"""

from __future__ import annotations

import http.client
import sys
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, push_to_gateway, start_http_server

from orchestrator.bounded_io import content_length, read_stream
from orchestrator.console import LiveView
from orchestrator.errors import BackendError
from orchestrator.limits import PUSHGATEWAY_ANSWER_BYTES
from orchestrator.model.timeline import Sample
from orchestrator.model.verdict import DrillVerdict, SlaVerdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PUSH_JOB = "drillctl"
PUSH_TIMEOUT = 5.0
"""Longest one push may take; a Pushgateway that does not answer costs a run no more than this."""


class DrillMetrics:
    def __init__(self, drill: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "drillctl_probe_latency_seconds",
            "Latency of each probe sample, failed ones included",
            ["drill", "probe", "phase"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.samples = Counter(
            "drillctl_probe_samples", "Probe samples by result", ["drill", "probe", "result"], registry=self.registry
        )
        self.up = Gauge(
            "drillctl_probe_up", "1 if the probe's latest sample passed", ["drill", "probe"], registry=self.registry
        )
        self.fault = Gauge(
            "drillctl_fault_active", "1 while the fault is injected", ["drill", "fault"], registry=self.registry
        )
        self.active = Gauge("drillctl_faults_active", "Faults injected right now", ["drill"], registry=self.registry)
        self.phase = Gauge(
            "drillctl_phase", "1 for the drill's current phase", ["drill", "phase"], registry=self.registry
        )
        self.sla = Gauge(
            "drillctl_sla_passed", "1 if the SLA passed (set at the end)", ["drill", "sla"], registry=self.registry
        )
        self.margin = Gauge(
            "drillctl_sla_margin",
            "Headroom left to the SLA's limit, in its unit",
            ["drill", "sla", "unit"],
            registry=self.registry,
        )
        self.verdict = Gauge(
            "drillctl_drill_verdict",
            "1 for the drill's verdict (set at the end)",
            ["drill", "verdict"],
            registry=self.registry,
        )
        self.drill = drill
        self._phase: str | None = None
        self._lock = threading.Lock()

    def sample(self, sample: Sample) -> None:
        self.samples.labels(self.drill, sample.probe, "ok" if sample.ok else "failed").inc()
        self.up.labels(self.drill, sample.probe).set(1 if sample.ok else 0)
        if sample.latency is not None:
            self.latency.labels(self.drill, sample.probe, sample.phase).observe(sample.latency)

    def event(self, kind: str, /, **fields: Any) -> None:
        if kind == "phase":
            with self._lock:
                if self._phase is not None:
                    self.phase.labels(self.drill, self._phase).set(0)
                self._phase = str(fields["name"])
                self.phase.labels(self.drill, self._phase).set(1)
        elif kind == "fault_injected":
            self.fault.labels(self.drill, fields["name"]).set(1)
            self.active.labels(self.drill).inc()
        elif kind == "fault_reverted":  # after a failed revert the fault is still in place: it stays active
            self.fault.labels(self.drill, fields["name"]).set(0)
            self.active.labels(self.drill).dec()

    def judged(self, verdicts: list[SlaVerdict], verdict: DrillVerdict) -> None:
        for v in verdicts:
            self.sla.labels(self.drill, v.name).set(1 if v.passed else 0)
            if v.margin is not None:
                self.margin.labels(self.drill, v.name, v.unit).set(v.margin)
        self.event("phase", name="done")
        self.verdict.labels(self.drill, verdict.outcome).set(1)

    def serve(self, port: int, host: str) -> WSGIServer:
        """An HTTP endpoint in a daemon thread; `shutdown()` on the result stops it."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return server


class MeteredView(LiveView):
    """The live view, also feeding the metrics: the engine and the recorder call it as before."""

    def __init__(self, metrics: DrillMetrics, stream: TextIO = sys.stderr, quiet: bool = False) -> None:
        super().__init__(stream, quiet)
        self.metrics = metrics

    def event(self, kind: str, /, **fields: Any) -> None:
        self.metrics.event(kind, **fields)
        super().event(kind, **fields)

    def sample(self, sample: Sample) -> None:
        self.metrics.sample(sample)
        super().sample(sample)


@dataclass(frozen=True)
class PushTarget:
    """Where and how often a run pushes its metrics (`--pushgateway`, `--push-every`)."""

    url: str
    every: float
    timeout: float = PUSH_TIMEOUT


def bounded_handler(
    url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
) -> Callable[[], None]:
    """prometheus_client's default push, reading the answer within PUSHGATEWAY_ANSWER_BYTES (it reads none:
    a gateway, or whatever answers at its URL, could send an endless body into a half-closed connection)."""

    def handle() -> None:
        request = urllib.request.Request(url, data=data, method=method)
        for name, value in headers:
            request.add_header(name, value)
        with urllib.request.urlopen(request, timeout=timeout) as response:  # HTTP >= 400 raises HTTPError
            read_stream(response, PUSHGATEWAY_ANSWER_BYTES, url, content_length(response.headers.get("Content-Length")))

    return handle


class Pusher:
    """Pushes a run's metrics to a Pushgateway every `every` seconds from a daemon thread, and once more at the
    end with the verdicts (`push`).

    Job `drillctl`, grouping key drill and run id: each run is a group of its own, so two runs never
    overwrite each other, and each push replaces its run's group whole (PUT). A failed push is logged and
    changes nothing else: the metrics are for watching, the report is the record.
    """

    def __init__(self, metrics: DrillMetrics, target: PushTarget, run_id: str) -> None:
        self.metrics = metrics
        self.target = target
        self.grouping = {"drill": metrics.drill, "run_id": run_id}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def push(self) -> None:
        """One push under the timeout; a failure is logged."""
        try:
            push_to_gateway(
                self.target.url,
                job=PUSH_JOB,
                registry=self.metrics.registry,
                grouping_key=self.grouping,
                timeout=self.target.timeout,
                handler=bounded_handler,
            )
        except (
            OSError,
            ValueError,
            http.client.HTTPException,
            BackendError,
        ) as e:  # refused, timed out, HTTP >= 400, bad URL, answer too large
            structlog.get_logger().warning(  # the logger as configured now: the run's log, also for the last push
                "pushgateway_push_failed",
                pushgateway=self.target.url,
                run_id=self.grouping["run_id"],
                error=str(e) or type(e).__name__,
            )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._every, name="drillctl-pushgateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the periodic pushes; a push under way finishes first (it is bounded by the timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.target.timeout + 1.0)

    def _every(self) -> None:
        """At once (a dashboard sees the run start), then every `every` seconds until stopped."""
        while True:
            self.push()
            if self._stop.wait(self.target.every):
                return
