"""The drill engine: preflight, setup, baseline, faults on schedule, rollback, recovery.

Signals only set a stop event; this coroutine is never cancelled from outside, so its
`finally` (rollback, then teardown) always runs to the end. Every injected fault is
journaled before it is injected and reverted from that record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from orchestrator.alerts.session import AlertSession
from orchestrator.analysis import recovery_decided
from orchestrator.errors import BackendError, DrillError, PreflightError, RevertFailed
from orchestrator.faults.base import DriverRegistry, Touched, touched
from orchestrator.journal import Journal
from orchestrator.kube.access import KubeAccess
from orchestrator.loading import LoadedDrill
from orchestrator.logs import redact
from orchestrator.model.alerts import AlertChange, AlertObservations
from orchestrator.model.findings import WorkloadResult
from orchestrator.model.operations import OperationLog
from orchestrator.model.spec import AlertFiringStop, FaultSpec
from orchestrator.model.timeline import FaultMark, PhaseMark, Sample, SampleFile, Timeline
from orchestrator.model.undo import Undo
from orchestrator.model.workload import default_key_prefix
from orchestrator.operation_store import FILE_NAME as OPERATIONS_FILE
from orchestrator.operation_store import OperationStream
from orchestrator.probes.base import Probe
from orchestrator.probes.registry import build_probe
from orchestrator.sample_store import FILE_NAME as SAMPLES_FILE
from orchestrator.sampling import Recorder, Sampler, default_max_in_flight
from orchestrator.stop_conditions import Recent, Stop, check, check_alert, lookback, of_probe
from orchestrator.targets.local import LocalFleet
from orchestrator.toxiproxy_client import ToxiproxyClient
from orchestrator.workloads import checker
from orchestrator.workloads.generator import History, Workload, verify
from orchestrator.workloads.registry import build_client

DRIVER_DEADLINE = 30.0
"""Longest any single prepare/inject/revert may take; drivers have tighter deadlines inside."""
LIFETIME_MARGIN = 3.0
"""Past a fault's scheduled end by this much, the watchdog reverts it even if the engine is stuck."""
LATE_MARGIN = 1.0
"""Beyond its probe's timeout, how late a sample may still land and count for stop conditions."""
TEST_BUSY = 3.5
"""Test-only (`<checkpoint>:busy`): how long the event loop computes without turning. Longer than the
watchdog's no-beat timeout, far shorter than its stuck-loop bound: a busy run that must live."""

T = TypeVar("T")


class Observer(Protocol):
    """Whoever shows the run live (the console); the engine reports, never formats."""

    def event(self, kind: str, /, **fields: Any) -> None: ...


class Guardian(Protocol):
    """The run's watchdog, a process of its own: it reverts a step past its deadline even if the engine hangs."""

    def deadline(self, step_id: str, monotonic: float) -> None: ...

    def settled(self, step_id: str) -> None: ...


class InjectedFailure(DrillError):
    """Raised by the test-only hook `fail_at`: a failure at one precise step of the engine."""


class Aborted(DrillError):
    """The run was stopped: a signal, a failed injection, or an error after injection."""


class BaselineFailed(DrillError):
    """Steady state did not hold before any fault; nothing was injected."""


@dataclass(frozen=True)
class RunResult:
    status: str
    reason: str | None
    timeline: Timeline
    injected: bool
    reverted: list[str]
    revert_failures: list[str]
    process_restarts: Mapping[str, int]
    stopped_by: Stop | None = None


@dataclass
class _Step:
    spec: FaultSpec
    undo: Undo | None = None
    injected_at: float | None = None
    reverted_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    revert: asyncio.Task[None] | None = None
    touched: Touched = field(default_factory=Touched)
    revert_notes: tuple[str, ...] = ()


@dataclass
class Engine:
    drill: LoadedDrill
    run_id: str
    run_dir: Path
    toxiproxy: ToxiproxyClient
    drivers: DriverRegistry
    fleet: LocalFleet
    observer: Observer
    kube: KubeAccess = field(default_factory=KubeAccess)
    guardian: Guardian | None = None
    """None only for an engine run without a watchdog."""
    fail_at: str | None = None
    """Test-only: raise InjectedFailure at this checkpoint (see `_checkpoint`); a driver failure at a
    precise step cannot be produced for real."""
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _stop_reason: str | None = None
    stopped_by: Stop | None = None

    def __post_init__(self) -> None:
        self.spec = self.drill.spec
        self.log = structlog.get_logger().bind(run_id=self.run_id, drill=self.spec.name)
        self.journal = Journal(self.run_dir / "journal.jsonl")
        self.recorder = Recorder(self.run_dir / SAMPLES_FILE, clean=redact)  # errors redacted once, on disk too
        self.samples_file: SampleFile | None = None
        self.steps = {f.name: _Step(f) for f in self.spec.spec.faults}
        self.processes = list(self.fleet.processes.values())
        self.phases: list[PhaseMark] = []
        self.created_proxies: list[str] = []
        self.reverted: list[str] = []
        self.revert_failures: list[str] = []
        self._loop = asyncio.get_running_loop()
        self.t0 = self._loop.time()
        self.end: float | None = None
        self._samplers: list[asyncio.Task[None]] = []
        self._probes: list[Probe] = []
        self.workload: Workload | None = None
        self._workload_task: asyncio.Task[None] | None = None
        self._verified = False
        self.workload_result: WorkloadResult | None = None
        interval = self.spec.spec.steady_state.interval
        self._recent = {
            probe.name: Recent(lookback(conditions, interval) + probe.timeout + LATE_MARGIN)
            for probe in self.spec.spec.steady_state.probes
            if (conditions := of_probe(self.spec.spec.stop_conditions, probe.name))
        }
        self.recorder.listeners.append(self._judge_stop_conditions)
        alerts = self.spec.spec.alerts
        self.alerts = None if alerts is None else AlertSession(alerts, self.spec, self._loop.time, self._warn)

    # --- public ---------------------------------------------------------------------------------

    def request_stop(self, reason: str, stop: Stop | None = None) -> None:
        """Idempotent: the first request names the reason; later ones (a second Ctrl-C) change nothing."""
        if not self._stop.is_set():
            reason = redact(reason)  # evidence quotes probe errors, which can quote a URL with a password
            self._stop_reason = reason
            self.stopped_by = None if stop is None else replace(stop, evidence=redact(stop.evidence))
            self.observer.event("stop_requested", reason=reason)
            self.log.warning("stop_requested", reason=reason, stop=None if stop is None else stop.to_json())
        self._stop.set()

    def stop_for(self, stop: Stop) -> None:
        """A stop whose cause goes into the report (a signal, `drillctl abort`); timed now."""
        timed = Stop(stop.kind, stop.name, round(self.now(), 6), stop.evidence)
        self.request_stop(timed.reason(), timed)

    async def run(self) -> RunResult:
        status, reason = "completed", None
        try:
            await self._checkpoint("preflight")
            await self._preflight()
            await self._checkpoint("setup")
            await self._setup()
            await self._check_targets()
            if self.alerts is not None:
                await self.alerts.preflight()
            self._start_sampling()
            await self._checkpoint("baseline")
            await self._phase("baseline", self.spec.spec.phases.baseline)
            self._check_baseline()
            await self._fault_phase()
            await self._rollback(final=False)
            await self._checkpoint("recovery")
            await self._recovery()
            await self._verify()
        except BaselineFailed as e:
            status, reason = "baseline_failed", str(e)
        except PreflightError as e:
            status, reason = "preflight_failed", str(e)
        except Aborted as e:
            status, reason = "aborted", str(e)
        except Exception as e:  # after injection every error aborts; before it, it is a setup failure
            status = "aborted" if self.injected else "preflight_failed"
            reason = f"{type(e).__name__}: {e}"
            self.log.exception("run_failed")
        finally:
            await self._rollback()
            await self._stop_workload(close=True)
            await self._stop_sampling()
            self.samples_file = self.recorder.close()
            await self._teardown()
            self.journal.close()
        self._check_workload()
        if status == "completed" and self.revert_failures:
            status, reason = "aborted", "a revert failed"
        self.log.info("run_finished", status=status, reason=reason)
        timeline = self._timeline()
        return RunResult(
            status=status,
            reason=None if reason is None else redact(reason),
            timeline=timeline,
            injected=self.injected,
            reverted=self.reverted,
            revert_failures=self.revert_failures,
            process_restarts={p.spec.name: p.restarts for p in self.processes},
            stopped_by=self.stopped_by,
        )

    @property
    def injected(self) -> bool:
        return any(s.undo is not None for s in self.steps.values())

    def now(self) -> float:
        return self._loop.time() - self.t0

    # --- preflight and setup --------------------------------------------------------------------

    async def _preflight(self) -> None:
        self.observer.event("phase", name="preflight")
        self.fleet.preflight(self.drill.folder)
        if self.spec.spec.proxies:
            try:
                version = await self.toxiproxy.version()
            except BackendError as e:
                raise PreflightError(str(e)) from e
            self.log.info("toxiproxy_reachable", url=self.toxiproxy.url, version=version)
        for proxy in self.spec.spec.proxies:
            existing = await self.toxiproxy.proxy(proxy.name)
            if existing is None:
                continue
            if existing.get("upstream") != proxy.upstream:
                raise PreflightError(
                    f"proxy {proxy.name} exists on {self.toxiproxy.url} with upstream {existing.get('upstream')}, "
                    f"the drill wants {proxy.upstream}"
                )
            stale = [t["name"] for t in await self.toxiproxy.toxics(proxy.name) if t["name"].startswith("drillctl-")]
            if stale:
                raise PreflightError(
                    f"proxy {proxy.name} on {self.toxiproxy.url} still carries toxics of an earlier drill: "
                    f"{', '.join(stale)}; remove them before running"
                )
        for step in self.steps.values():
            await self._deadline(self.drivers.for_fault(step.spec).preflight(step.spec), "preflight")
        if (workload := self.spec.spec.workload) is not None:
            try:
                client = build_client(workload, self.drill.folder)
            except Exception as e:  # a plugin that loaded at validation but cannot build its client
                raise PreflightError(f"workload client {workload.client['type']!r} cannot be built: {e}") from e
            log = OperationLog(redact)  # error texts redacted once, on disk too
            history = History(log, OperationStream(self.run_dir / OPERATIONS_FILE, log))
            prefix = workload.key_prefix if workload.key_prefix is not None else default_key_prefix(self.run_id)
            self.workload = Workload(
                workload, client, history, self.t0, lambda: self.recorder.phase, prefix, self.spec.spec.seed
            )

    async def _setup(self) -> None:
        self.observer.event("phase", name="setup")
        for proxy in self.spec.spec.proxies:
            if await self.toxiproxy.proxy(proxy.name) is not None:
                continue
            try:
                await self.toxiproxy.create_proxy(proxy.name, proxy.listen, proxy.upstream)
            except BackendError as e:
                raise PreflightError(f"cannot create proxy {proxy.name} on {proxy.listen}: {e}") from e
            self.created_proxies.append(proxy.name)
            self.log.info("proxy_created", proxy=proxy.name, listen=proxy.listen, upstream=proxy.upstream)
        for proc in self.processes:
            self.log.info("process_starting", process=proc.spec.name, argv=proc.spec.argv, env=proc.spec.env)
            await proc.start()
            self.observer.event("process_started", name=proc.spec.name, pid=proc.pid)
        for proc in self.processes:
            await proc.wait_ready()
            self.observer.event("process_ready", name=proc.spec.name)

    async def _check_targets(self) -> None:
        """Drivers that name targets at injection time (resolvers) ask once the system runs: a resolver that
        cannot answer stops the run here, before the baseline (PreflightError, exit 3)."""
        for step in self.steps.values():
            check = getattr(self.drivers.for_fault(step.spec), "check_targets", None)
            if check is not None:
                await self._deadline(check(step.spec), f"check the target of {step.spec.name}")

    async def _teardown(self) -> None:
        for proc in reversed(self.processes):
            try:
                await proc.stop()
            except Exception as e:
                self.log.error("process_stop_failed", process=proc.spec.name, error=repr(e))
        for name in self.created_proxies:
            try:
                await self.toxiproxy.delete_proxy(name)
            except BackendError as e:
                self.log.error("proxy_delete_failed", proxy=name, error=str(e))

    # --- sampling -------------------------------------------------------------------------------

    def _start_sampling(self) -> None:
        steady = self.spec.spec.steady_state
        self.log.info(
            "sampling_started", interval=steady.interval, probes=[p.model_dump(mode="json") for p in steady.probes]
        )
        self.t0 = self._loop.time()
        for spec in steady.probes:
            limit = steady.max_in_flight or default_max_in_flight(spec.timeout, steady.interval)
            probe = build_probe(spec, limit, self.drill.folder, self.kube)
            self._probes.append(probe)
            sampler = Sampler(probe, steady.interval, self.t0, limit, self.recorder)
            self._samplers.append(asyncio.create_task(sampler.run()))
        if self.workload is not None:
            self.workload.t0 = self.t0
            ops = self.workload.spec
            self.log.info("workload_started", rate=ops.rate, client=ops.client["type"], keys=ops.keys)
            self._workload_task = asyncio.create_task(self.workload.run())
        if self.alerts is not None:
            self.alerts.start(self.t0, self._judge_alert_stops)

    async def _stop_workload(self, close: bool = False) -> None:
        """Stop sending operations; those in flight get their timeout to land. Idempotent. `close`: the client too."""
        if self._workload_task is not None:
            self._workload_task.cancel()
            await asyncio.gather(self._workload_task, return_exceptions=True)
            self._workload_task = None
        if close and self.workload is not None:
            try:
                await self.workload.client.close()
            except Exception as e:  # a plugin's close must not keep the run from its teardown
                self.log.error("workload_close_failed", error=repr(e))

    async def _verify(self) -> None:
        """After recovery, with the system still up: read back every key the workload wrote."""
        if self.workload is None:
            return
        await self._stop_workload()
        spec = self.workload.spec.verify
        self.observer.event("phase", name="verify", seconds=spec.timeout)
        started = self.now()
        await verify(self.workload, "verify", self._loop.time() + spec.timeout)
        self._verified = True
        self.log.info("workload_verified", keys=len(self.workload.written), seconds=round(self.now() - started, 3))

    def _check_workload(self) -> None:
        """Close the workload's client and history and check it (pure; seconds for a million operations)."""
        if self.workload is None:
            return
        spec, history = self.workload.spec, self.workload.history
        file = history.stream.close() if history.stream is not None else None
        self.workload_result = checker.check(history.log, spec.client["type"], spec.rate, self._verified, file)

    async def _stop_sampling(self) -> None:
        for task in self._samplers:
            task.cancel()
        await asyncio.gather(*self._samplers, return_exceptions=True)
        for probe in self._probes:
            await probe.close()
        if self.alerts is not None:
            await self.alerts.stop()
        self.end = self.now()

    # --- phases ---------------------------------------------------------------------------------

    async def _phase(self, name: str, seconds: float) -> None:
        start = self.now()
        self.recorder.phase = name
        self.observer.event("phase", name=name, seconds=seconds)
        try:
            await self._sleep(seconds)
        finally:
            self.phases.append(PhaseMark(name, start, self.now()))

    async def _sleep(self, seconds: float) -> None:
        """Sleep, or raise Aborted as soon as a stop is requested."""
        try:
            await asyncio.wait_for(self._stop.wait(), max(0.0, seconds))
        except TimeoutError:
            return
        raise Aborted(self._stop_reason or "stop requested")

    def _check_baseline(self) -> None:
        """One pass over the samples: this runs on the event loop, and a pass per probe (20 probes at 20ms: 100,000
        samples decoded, 0.4 s of CPU) held it, and the heartbeat, for well over a second on a loaded machine."""
        tolerance = self.spec.spec.steady_state.tolerance
        chosen: dict[str, int] = {}
        failed: dict[str, int] = {}
        example: dict[str, str | None] = {}
        for s in self.recorder.samples:
            if s.phase != "baseline":
                continue
            chosen[s.probe] = chosen.get(s.probe, 0) + 1
            if not s.ok:
                failed[s.probe] = failed.get(s.probe, 0) + 1
                example.setdefault(s.probe, s.error)
        broken = []
        for probe in self.spec.spec.steady_state.probes:
            n, bad = chosen.get(probe.name, 0), failed.get(probe.name, 0)
            if not n or bad / n > tolerance:
                broken.append(
                    f"{probe.name}: {bad}/{n} failed (e.g. {example.get(probe.name) if bad else 'no samples'})"
                )
        if broken:
            raise BaselineFailed("steady state did not hold in the baseline, nothing injected: " + "; ".join(broken))

    async def _fault_phase(self) -> None:
        start = self.now()
        self.recorder.phase = "fault"
        length = self.spec.fault_phase_length()
        self.observer.event("phase", name="fault", seconds=length)
        names = {asyncio.create_task(self._run_fault(step, start)): name for name, step in self.steps.items()}
        tasks = list(names)
        stop: asyncio.Task[Any] = asyncio.create_task(self._stop.wait())
        try:
            remaining: set[asyncio.Task[Any]] = set(tasks)
            while remaining:
                done, remaining = await asyncio.wait(remaining | {stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    raise Aborted(self._stop_reason or "stop requested")
                remaining.discard(stop)
                for task in done:
                    if (error := task.exception()) is not None:
                        raise Aborted(f"fault {names[task]} failed: {error}") from error
            await self._sleep(start + length - self.now())
        finally:
            stop.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.phases.append(PhaseMark("fault", start, self.now()))

    async def _run_fault(self, step: _Step, phase_start: float) -> None:
        spec = step.spec
        driver = self.drivers.for_fault(spec)
        await asyncio.sleep(max(0.0, phase_start + spec.start - self.now()))
        await self._checkpoint(f"prepare:{spec.name}")
        try:
            undo = await self._deadline(driver.prepare(spec, f"{self.run_id}/{spec.name}"), f"prepare {spec.name}")
        except Exception as e:
            step.error = f"prepare failed, nothing injected: {e}"
            raise
        self.journal.record("prepared", undo)
        step.undo = undo
        step.touched = touched(driver, undo)
        step.injected_at = self.now()
        if self.guardian is not None:
            self.guardian.deadline(undo.step_id, time.monotonic() + self._lifetime(spec, phase_start))
        try:
            await self._checkpoint(f"inject:{spec.name}")
            await self._deadline(driver.inject(spec, undo), f"inject {spec.name}")
            await self._checkpoint(f"injected:{spec.name}")
        except Exception as e:
            step.error = f"inject failed: {e}"
            raise
        self.journal.record("injected", undo)
        self.log.info("fault_injected", fault=spec.name, type=spec.type, undo=undo.to_json())
        self.observer.event("fault_injected", name=spec.name, what=driver.describe(spec))
        await asyncio.sleep(max(0.0, step.injected_at + spec.duration - self.now()))
        await self._checkpoint(f"hold:{spec.name}")
        # The fault ends when its revert begins, not when the revert call returns: the revert takes effect
        # somewhere in between, and on a loaded machine the call returned (and the loop came back to this task)
        # after samples already passed, so the recovery read as before the revert and as taking no time at all.
        ending = self.now()
        if spec.reverts_on_schedule:
            await self._revert(step)
        else:
            self.observer.event("fault_left_in_place", name=spec.name, until="the end of the drill")
        step.ended_at = ending

    async def _revert(self, step: _Step) -> None:
        """Revert once; shielded, so cancelling the caller does not cancel the revert."""
        if step.revert is None:
            step.revert = asyncio.create_task(self._do_revert(step))
        await asyncio.shield(step.revert)

    async def _do_revert(self, step: _Step) -> None:
        """Reverts are idempotent, so a revert that timed out or failed on the wire is simply tried again.

        Toxiproxy itself can take seconds to remove a toxic from busy connections (Shopify/toxiproxy#558).
        """
        undo = step.undo
        assert undo is not None
        driver = self.drivers.for_undo(undo)
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_delay(DRIVER_DEADLINE),
                wait=wait_exponential(multiplier=0.2, max=2.0),
                retry=retry_if_exception_type(BackendError),
                before_sleep=lambda state: self.log.warning(
                    "revert_retry",
                    fault=step.spec.name,
                    attempt=state.attempt_number,
                    error=str(state.outcome.exception()) if state.outcome else None,
                ),
                reraise=True,
            ):
                with attempt:
                    await self._checkpoint(f"revert:{step.spec.name}")
                    notes = await self._deadline(driver.revert(undo), f"revert {step.spec.name}")
        except Exception as e:
            message = f"{step.spec.name}: {e}"
            step.error = f"revert failed: {e}"
            self.revert_failures.append(message)
            self.journal.record("revert_failed", undo, error=str(e))
            self.log.error("revert_failed", fault=step.spec.name, undo=undo.to_json(), error=str(e))
            self.observer.event("revert_failed", name=step.spec.name, error=str(e))
            raise RevertFailed(message) from e
        step.reverted_at = self.now()
        step.revert_notes = tuple(redact(str(note)) for note in notes or ())
        self.journal.record("reverted", undo)
        if self.guardian is not None:
            self.guardian.settled(undo.step_id)
        self.reverted.append(undo.step_id)
        self.log.info("fault_reverted", fault=step.spec.name, notes=step.revert_notes)
        self.observer.event("fault_reverted", name=step.spec.name)

    async def _rollback(self, final: bool = True) -> None:
        """Revert whatever is still injected, newest first. Failures are collected, never swallowed.

        Before the recovery phase (`final=False`), faults left in place on purpose stay.
        """
        open_steps = [s for s in self.steps.values() if s.undo is not None and (final or s.spec.reverts_on_schedule)]
        open_steps.sort(key=lambda s: s.injected_at or 0.0, reverse=True)
        for step in open_steps:
            try:
                await self._revert(step)
            except RevertFailed:
                continue

    async def _recovery(self) -> None:
        """Sample until every recovery window is measured (checked as samples land) or the timeout.

        Each check costs what landed since the last one (analysis indexes the sample log
        incrementally), so a long recovery phase stays linear in its samples.
        """
        start = self.now()
        self.recorder.phase = "recovery"
        timeout = self.spec.spec.phases.recovery
        self.observer.event("phase", name="recovery", seconds=timeout)
        last_end = max((s.ended_at for s in self.steps.values() if s.ended_at is not None), default=start)
        timeline = self._timeline()  # faults are settled by now; only its end moves
        try:
            while not recovery_decided(self.spec, replace(timeline, end=self.now(), alerts=self._alerts()), last_end):
                remaining = start + timeout - self.now()
                if remaining <= 0:
                    return
                self.recorder.landed.clear()
                waiters = [asyncio.create_task(self.recorder.landed.wait()), asyncio.create_task(self._stop.wait())]
                await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
                if self._stop.is_set():
                    raise Aborted(self._stop_reason or "stop requested")
        finally:
            self.phases.append(PhaseMark("recovery", start, self.now()))

    # --- stop conditions ------------------------------------------------------------------------

    def _judge_stop_conditions(self, sample: Sample) -> None:
        """Called as each sample lands; the first condition to trip stops the drill."""
        conditions = of_probe(self.spec.spec.stop_conditions, sample.probe)
        if not conditions or self._stop.is_set():
            return
        recent = self._recent[sample.probe]
        recent.add(sample)
        for condition in conditions:
            if (stop := check(condition, recent.samples, sample)) is not None:
                self.request_stop(stop.reason(), stop)
                return

    def _judge_alert_stops(self, states: Sequence[AlertChange]) -> None:
        """Called after each answered poll of Prometheus's alerts with every watched alert's latest state."""
        if self._stop.is_set():
            return
        latest = {s.alert: s for s in states}
        for condition in self.spec.spec.stop_conditions:
            if not isinstance(condition, AlertFiringStop) or (state := latest.get(condition.selector.key)) is None:
                continue
            if (stop := check_alert(condition, self.recorder.phase, state)) is not None:
                self.request_stop(stop.reason(), stop)
                return

    def _warn(self, message: str) -> None:
        self.log.warning("alerts_warning", message=message)
        self.observer.event("warning", message=message)

    def _alerts(self) -> AlertObservations | None:
        return None if self.alerts is None else self.alerts.observations(self.t0)

    # --- helpers --------------------------------------------------------------------------------

    def _lifetime(self, spec: FaultSpec, phase_start: float) -> float:
        """Seconds from now that this fault may live at most; its watchdog enforces it even if this engine hangs.

        A fault left in place (restore: false) lives to the end of the recovery phase.
        """
        if spec.reverts_on_schedule:
            return spec.duration + LIFETIME_MARGIN
        end = phase_start + self.spec.fault_phase_length() + self.spec.spec.phases.recovery
        return max(0.0, end - self.now()) + LIFETIME_MARGIN

    async def _checkpoint(self, name: str) -> None:
        """Test-only failure injection (`fail_at`); `<name>:hang` leaves this step stuck until cancelled,
        `<name>:busy` keeps the event loop computing for TEST_BUSY seconds (a slow callback)."""
        if self.fail_at == name:
            raise InjectedFailure(f"failure injected at {name} (test hook)")
        if self.fail_at == f"{name}:hang":
            self.log.warning("test_hook_hang", checkpoint=name)
            await asyncio.Event().wait()
        if self.fail_at == f"{name}:busy":
            self.log.warning("test_hook_busy", checkpoint=name, seconds=TEST_BUSY)
            until = time.monotonic() + TEST_BUSY
            while time.monotonic() < until:  # CPU on the loop's thread, holding the GIL between switches
                sum(range(1000))

    async def _deadline(self, call: Awaitable[T], what: str) -> T:
        try:
            return await asyncio.wait_for(call, DRIVER_DEADLINE)
        except TimeoutError as e:
            raise BackendError(f"{what} did not finish within {DRIVER_DEADLINE:g}s") from e

    def _timeline(self) -> Timeline:
        steady = self.spec.spec.steady_state
        return Timeline(
            interval=steady.interval,
            probes=tuple(p.name for p in steady.probes),
            samples=self.recorder.samples,
            phases=tuple(self.phases),
            faults=tuple(
                FaultMark(
                    name=s.spec.name,
                    type=s.spec.type,
                    params=redact(
                        s.spec.model_dump(
                            mode="json", by_alias=True, exclude={"name", "type", "runbook"}, exclude_none=True
                        )
                    ),
                    scheduled_start=s.spec.start,
                    scheduled_end=s.spec.start + s.spec.duration,
                    injected_at=s.injected_at,
                    reverted_at=s.reverted_at,
                    ended_at=s.ended_at,
                    runbook=s.spec.runbook,
                    error=s.error,
                    touched=tuple(redact(target) for target in s.touched.targets),
                    seed=s.touched.seed,
                    revert_notes=s.revert_notes,
                )
                for s in self.steps.values()
            ),
            end=self.end if self.end is not None else self.now(),
            samples_file=self.samples_file,
            workload=self.workload_result,
            alerts=self._alerts(),
        )
