"""Runs a game day: window, lease, each drill through `run_drill`, cool-downs, stop policy, report, webhook.

Drills run one after another in the main thread (each drill owns its event loop and its signal
handlers); the lease is renewed from a worker thread meanwhile. A drill that cannot start
(`run_drill` exits with code 3 on preflight) is recorded as such and the game day goes on as its
stop policy says.
"""

from __future__ import annotations

import contextlib
import io
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TextIO

from orchestrator.abort import FREEZE, live_runs, request_stops
from orchestrator.console import LiveView
from orchestrator.exit_codes import EXIT_ABORTED, EXIT_PREFLIGHT
from orchestrator.freeze import read_freeze
from orchestrator.gameday.control import GameDayControl
from orchestrator.gameday.lease import LeaseHolder
from orchestrator.gameday.plan import LoadedGameDay, outside_window
from orchestrator.gameday.report import (
    DrillResult,
    GameDayResult,
    RecoveryFigure,
    to_json,
    with_webhook,
    write_all,
)
from orchestrator.gameday.webhook import deliver
from orchestrator.history.recording import record_gameday
from orchestrator.history.store import location_of
from orchestrator.kube.access import KubeAccess
from orchestrator.kube.freeze import ClusterFreeze
from orchestrator.kube.freeze_watch import FreezeWatch
from orchestrator.loading import LoadedDrill
from orchestrator.metrics import DrillMetrics, MeteredView, PushTarget
from orchestrator.model.freeze import Freeze
from orchestrator.reporting.junit import render_junit
from orchestrator.reporting.report import Report
from orchestrator.runner import kube_access, new_run_dir, run_drill
from orchestrator.serve.runs import serving_url


class Interrupted(Exception):
    """SIGTERM or SIGINT between two drills (during a drill, the drill itself handles them)."""


@dataclass(frozen=True)
class GameDayOptions:
    runs_dir: Path
    toxiproxy_url: str | None
    kube: KubeAccess
    confirmed: bool
    forced: bool
    push: PushTarget | None = None
    """Each drill pushes its metrics to this Pushgateway (`--pushgateway`, `DRILLCTL_PUSHGATEWAY` in the chart)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """`--label key=value`: every drill's run is recorded in the history with them."""
    history: str | None = None
    """Where the game day and its drills' runs are recorded (`--history`); default `<runs_dir>/history.sqlite`."""


def run_gameday(
    gameday: LoadedGameDay,
    options: GameDayOptions,
    view: LiveView,
    lease: LeaseHolder | None,
    cluster_freeze: ClusterFreeze | None = None,
) -> GameDayResult:
    """Run every drill as the stop policy allows; the lease (already acquired) is released by the caller.

    With `cluster_freeze`, the cluster's freeze is watched meanwhile: a freeze stops the live drill (through its
    control FIFO, as `drillctl freeze` does on a machine) and the game day before its next drill. The game day's
    own control FIFO (`control.py`) hears a machine's freeze (and `drillctl abort`) at once, even in a cool-down.
    """
    body = gameday.spec.spec
    started = datetime.now(UTC)
    options.runs_dir.mkdir(parents=True, exist_ok=True)
    report_dir = new_run_dir(options.runs_dir, f"gameday-{gameday.spec.name}", started)
    cfg = None if lease is None else lease.lease.config

    def result_of(drills: list[DrillResult], ended: tuple[str | None, bool] | None) -> GameDayResult:
        """The game day with these drills; `ended` (why drills were left unrun, and whether by the stop policy)
        once it is over, None while it runs. serve.json is read each time: a server may start meanwhile."""
        return GameDayResult(
            name=gameday.spec.name,
            file=gameday.path,
            report_dir=report_dir,
            started_at=started,
            finished_at=None if ended is None else datetime.now(UTC),
            drills=drills,
            stop_reason=None if ended is None else ended[0],
            policy_stop=False if ended is None else ended[1],
            forced=options.forced,
            lease=None if cfg is None else {"name": cfg.name, "namespace": cfg.namespace, "identity": cfg.identity},
            labels=options.labels,
            live_url=serving_url(options.runs_dir),
        )

    def progress(done: list[DrillResult], running: bool) -> None:
        """The index as it stands: the drills done, the next one under way if `running`, the rest to come. A
        failure to write it is said and the game day goes on (the drills are what matters; the index at the
        end is written or fails loudly)."""
        rest = [
            DrillResult(
                name=drill.spec.name,
                file=drill.path,
                status="running" if running and i == 0 else "pending",
                exit_code=0,
                started_at=datetime.now(UTC) if running and i == 0 else None,
            )
            for i, drill in enumerate(gameday.drills[len(done) :])
        ]
        try:
            write_all(result_of([*done, *rest], None))
        except OSError as e:
            print(f"warning: the game-day index in {report_dir} was not written: {e}", file=sys.stderr)

    # The lease's `lost` doubles as the game day's wake-up: a lost lease, a freeze or an abort cuts a cool-down short.
    wake = lease.lost if lease is not None else threading.Event()
    control = GameDayControl(report_dir, wake)  # opened before the freeze is first read: no freeze slips between
    try:
        control.start()
        watch = None if cluster_freeze is None else _watch_freeze(cluster_freeze, options.runs_dir, wake)

        def frozen() -> Freeze | None:
            return read_freeze(options.runs_dir) or (watch.seen if watch is not None else None)

        progress([], running=False)
        try:
            results, stop_reason, policy_stop = _run_drills(
                gameday, options, view, lease, wake, frozen, control, progress
            )
        finally:
            if watch is not None:
                watch.stop()
        for drill in gameday.drills[len(results) :]:
            results.append(
                DrillResult(name=drill.spec.name, file=drill.path, status="skipped", exit_code=0, reason=stop_reason)
            )
        result = result_of(results, (stop_reason, policy_stop))
        hook = body.webhook
        if hook is not None:
            result = with_webhook(result, deliver(hook.url, to_json(result), hook.timeout))
        write_all(result)
        location = location_of(options.history, options.runs_dir)
        record_gameday(to_json(result), report_dir, location)  # never fatal
    finally:
        control.close()  # once the report is written: a waiting `drillctl freeze` learns the game day is over
    return result


def _run_drills(
    gameday: LoadedGameDay,
    options: GameDayOptions,
    view: LiveView,
    lease: LeaseHolder | None,
    wake: threading.Event,
    frozen: Callable[[], Freeze | None],
    control: GameDayControl,
    progress: Callable[[list[DrillResult], bool], None],
) -> tuple[list[DrillResult], str | None, bool]:
    """The drills in turn until one must not start; their results, why the rest did not start, and whether
    that was the stop policy. `progress` is told as each drill starts and ends."""
    body = gameday.spec.spec
    results: list[DrillResult] = []
    for index, drill in enumerate(gameday.drills):
        try:
            with _interruptible():
                stop_reason = _reason_not_to_start(gameday, index, options, view, lease, wake, frozen, control)
        except Interrupted as e:
            stop_reason = str(e)
        if stop_reason is not None:
            return results, stop_reason, False
        view.event("phase", name=f"drill {index + 1}/{len(gameday.drills)}: {drill.spec.name}")
        progress(results, True)
        outcome = _run_one(drill, options, view, frozen)
        results.append(outcome)
        progress(results, False)
        if (outcome.reason or "").startswith("received SIG"):
            return results, f"drill {drill.spec.name} was stopped: {outcome.reason}", False
        if (freeze := frozen()) is not None:  # before the stop policy: the freeze is why the drill was stopped
            return results, freeze.describe(), False
        if (told := control.stop_reason()) is not None:
            return results, told, False
        if _policy_stops(body.stop, outcome):
            if index + 1 < len(gameday.drills):
                return results, f"stop policy {body.stop}: drill {drill.spec.name} {outcome.status}", True
            break
    return results, None, False


def _watch_freeze(cluster_freeze: ClusterFreeze, runs_dir: Path, wake: threading.Event) -> FreezeWatch:
    def on_freeze(freeze: Freeze) -> None:
        request_stops(live_runs(runs_dir), FREEZE, freeze.reason, wait=0.0)  # the drill's own end is awaited
        wake.set()

    watch = FreezeWatch(cluster_freeze, on_freeze)
    watch.start()
    return watch


def _reason_not_to_start(
    gameday: LoadedGameDay,
    index: int,
    options: GameDayOptions,
    view: LiveView,
    lease: LeaseHolder | None,
    wake: threading.Event,
    frozen: Callable[[], Freeze | None],
    control: GameDayControl,
) -> str | None:
    """The cool-down before drill `index` (cut short by a lost lease, a freeze or an abort), then why it must not
    start."""
    cooldown = gameday.spec.spec.cooldown
    if index > 0 and cooldown > 0:
        view.event("phase", name=f"cool-down before {gameday.drills[index].spec.name}", seconds=cooldown)
        wake.wait(cooldown)
    if (freeze := frozen()) is not None:
        return freeze.describe()
    if (told := control.stop_reason()) is not None:  # a freeze lifted before it was read, or an abort
        return told
    if lease is not None and lease.lost.is_set():
        return lease.lost_reason or "the lease was lost"
    if not options.forced and (why := outside_window(gameday, datetime.now(UTC))) is not None:
        return f"the window closed: {why}"
    return None


def _policy_stops(policy: str, result: DrillResult) -> bool:
    if policy == "never":
        return False
    if policy == "first_failure":
        return result.status != "passed"
    return result.status not in ("passed", "failed")


def _run_one(
    drill: LoadedDrill, options: GameDayOptions, view: LiveView, frozen: Callable[[], Freeze | None]
) -> DrillResult:
    """One drill through `run_drill`; its exit on preflight is caught and recorded with what it printed."""
    started = datetime.now(UTC)
    errors = _Tee(sys.stderr)
    try:
        with contextlib.redirect_stderr(errors):
            access = kube_access(drill, options.kube, options.confirmed)
            metrics = None
            if options.push is not None:
                metrics = DrillMetrics(drill.spec.name)
                view = MeteredView(metrics, quiet=view.quiet)
            report = run_drill(
                drill,
                options.runs_dir,
                options.toxiproxy_url,
                view,
                access,
                metrics,
                options.push,
                options.labels,
                options.history,
                frozen,
            )
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else EXIT_PREFLIGHT
        return DrillResult(
            name=drill.spec.name,
            file=drill.path,
            status="preflight" if code == EXIT_PREFLIGHT else "error",
            exit_code=code,
            started_at=started,
            finished_at=datetime.now(UTC),
            reason=errors.last_error() or f"drillctl exited with code {code}",
        )
    except Exception as e:  # a bug or a backend failure outside the engine: recorded, the game day goes on
        return DrillResult(
            name=drill.spec.name,
            file=drill.path,
            status="error",
            exit_code=EXIT_ABORTED,
            started_at=started,
            finished_at=datetime.now(UTC),
            reason=f"{type(e).__name__}: {e}",
        )
    return from_report(drill, report)


def from_report(drill: LoadedDrill, report: Report) -> DrillResult:
    return DrillResult(
        name=drill.spec.name,
        file=drill.path,
        status=report.status,
        exit_code=report.exit_code,
        run_dir=report.facts.run_dir,
        started_at=report.facts.started_at,
        finished_at=report.facts.finished_at,
        reason=report.facts.reason,
        slas_passed=sum(v.passed for v in report.verdicts),
        slas_failed=[v.name for v in report.verdicts if not v.passed],
        recovery=[
            RecoveryFigure(w.fault, w.time_to_impact, w.time_to_recover, w.unavailability) for w in report.windows
        ],
        junit=render_junit(report),
    )


class _Tee(io.TextIOBase):
    """Passes writes through to the real stderr and keeps the last `error:` line, for the game-day report."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.lines += [line.removeprefix("error: ") for line in text.splitlines() if line.startswith("error: ")]
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def last_error(self) -> str | None:
        return self.lines[-1] if self.lines else None


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGINT/SIGTERM raise Interrupted while between drills (each drill's event loop resets the handlers)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(f"received {signal.Signals(signum).name} between drills")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
