"""Runs one drill: run directory, logs, Toxiproxy (private or given), engine, signals, reports."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.abort import FREEZE, ControlChannel, request_stops
from orchestrator.console import LiveView
from orchestrator.engine import Engine, RunResult
from orchestrator.errors import BackendError, PreflightError
from orchestrator.exit_codes import EXIT_PREFLIGHT
from orchestrator.faults.registry import build_registry
from orchestrator.freeze import read_freeze
from orchestrator.history.recording import record_finished
from orchestrator.history.store import location_of
from orchestrator.kube.access import KubeAccess
from orchestrator.kube.freeze import ClusterFreeze
from orchestrator.kube.freeze_watch import FreezeWatch
from orchestrator.live_status import LiveStatus
from orchestrator.loading import LoadedDrill
from orchestrator.logs import log_to
from orchestrator.model.freeze import Freeze
from orchestrator.recovery import unsettled
from orchestrator.reporting.html import write_html
from orchestrator.reporting.json_report import write_json
from orchestrator.reporting.junit import write_junit
from orchestrator.reporting.markdown import write_markdown
from orchestrator.reporting.report import Report, RunFacts, build_report
from orchestrator.stop_conditions import Stop
from orchestrator.targets.local import LocalFleet
from orchestrator.toxiproxy_client import ToxiproxyClient
from orchestrator.toxiproxy_server import LocalToxiproxy
from orchestrator.watchdog import RUN_MARKER, Link, heartbeat

if TYPE_CHECKING:
    from orchestrator.metrics import DrillMetrics, Pusher, PushTarget

TEST_FAIL_AT = "DRILLCTL_TEST_FAIL_AT"
"""Test-only: the engine checkpoint at which to inject a failure (see Engine.fail_at)."""

UNUSED_TOXIPROXY = "http://127.0.0.1:8474"
"""Address given to drivers of a drill without proxies; they never call it."""


def new_run_dir(runs_dir: Path, drill_name: str, started: datetime) -> Path:
    """`<runs>/<drill>-<UTC time>`, with a suffix when two runs start in the same second."""
    base = f"{drill_name}-{started.strftime('%Y%m%dT%H%M%S')}Z"
    run_dir = runs_dir / base
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = runs_dir / f"{base}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir


def kube_access(drill: LoadedDrill, flags: KubeAccess, confirmed: bool = False) -> KubeAccess:
    """The cluster access of a run: the command line's flags, filled in from the drill's `targets.kubernetes`.

    `confirmed` is `--yes`, which a protected context (e.g. `*prod*`) needs unless the drill allows it.
    """
    kube = drill.spec.spec.targets.kubernetes
    body = drill.spec.spec
    horizon = body.phases.baseline + drill.spec.fault_phase_length() + body.phases.recovery
    if kube is None:
        return dataclasses.replace(flags, confirmed=confirmed, horizon=horizon)
    merged = flags.merged_with(kube.context, kube.namespace)
    return KubeAccess(
        merged.kubeconfig, merged.context, merged.namespace, kube.request_timeout, confirmed, kube, horizon
    )


def seeded(drill: LoadedDrill) -> LoadedDrill:
    """A drill with Kubernetes faults and no seed gets a random one, which the report records for a replay."""
    body = drill.spec.spec
    if body.seed is not None or all(f.backend == "local" for f in body.faults):
        return drill
    spec = drill.spec.model_copy(update={"spec": body.model_copy(update={"seed": secrets.randbelow(2**31)})})
    return dataclasses.replace(drill, spec=spec)


def run_drill(
    drill: LoadedDrill,
    runs_dir: Path,
    toxiproxy_url: str | None,
    view: LiveView,
    kube: KubeAccess | None = None,
    metrics: DrillMetrics | None = None,
    push: PushTarget | None = None,
    labels: Mapping[str, str] | None = None,
    history: str | None = None,
    frozen_by: Callable[[], Freeze | None] | None = None,
    cluster_freeze: ClusterFreeze | None = None,
) -> Report:
    """`metrics` (fed by the view) get the verdicts once judged; with `push`, they also go to a Pushgateway
    during the run and once more at its end. Once its reports are written, the run is recorded with its
    `labels` in the history (`history`, default `<runs_dir>/history.sqlite`). `frozen_by` says whether a freeze
    holds (default: the one of `runs_dir`; a game day adds the cluster's, which it watches itself). With
    `cluster_freeze` (a lone run of a Kubernetes drill), the cluster's freeze is read before the run starts and
    watched while it runs: once it appears, the run stops as for `drillctl freeze`."""
    frozen_by = frozen_by or functools.partial(read_freeze, runs_dir)
    frozen = frozen_by()
    if frozen is not None:
        click.echo(f"error: drills are {frozen.describe()}; `drillctl unfreeze` lifts it", err=True)
        sys.exit(EXIT_PREFLIGHT)
    if cluster_freeze is not None:
        _refuse_if_cluster_frozen(cluster_freeze)
    left = unsettled(runs_dir)
    if left:
        where = ", ".join(str(p.parent) for p in left)
        click.echo(
            f"error: earlier runs left faults that were never reverted ({where}); "
            f"run `drillctl recover --runs-dir {runs_dir}` first",
            err=True,
        )
        sys.exit(EXIT_PREFLIGHT)
    drill = seeded(drill)
    started = datetime.now(UTC)
    run_dir = new_run_dir(runs_dir, drill.spec.name, started)
    run_id = run_dir.name
    watchdog = start_watchdog(run_dir)
    control = ControlChannel(run_dir)
    if (frozen := frozen_by()) is not None:  # frozen since the check above: stop before any fault
        control.post(FREEZE, frozen.reason)
    watch = None if cluster_freeze is None else _watch_cluster_freeze(cluster_freeze, run_dir)
    signals = _Signals()
    previous = {sig: signal.signal(sig, signals) for sig in (signal.SIGINT, signal.SIGTERM)}
    clean = False
    os.environ[RUN_MARKER] = str(run_dir.resolve())  # inherited by every process the run starts
    pusher = _pusher(metrics, push, run_id)
    try:
        try:
            with (run_dir / "drill.log.jsonl").open("a", encoding="utf-8") as log_file:
                log_to(log_file)
                if pusher is not None:
                    pusher.start()
                try:
                    result, url = asyncio.run(
                        _run(
                            drill,
                            run_id,
                            run_dir,
                            toxiproxy_url,
                            view,
                            Link(watchdog.stdin),
                            kube or KubeAccess(),
                            control,
                            signals,
                            started,
                        )
                    )
                finally:
                    if pusher is not None:
                        pusher.stop()  # before the log closes: the periodic pushes log their failures there
            clean = True
        except SystemExit:
            clean = True  # a preflight failure: nothing injected, said and exited on purpose
            raise
        finally:
            stop_watchdog(watchdog, clean)
        facts = RunFacts(
            run_id=run_id,
            run_dir=run_dir,
            started_at=started,
            finished_at=datetime.now(UTC),
            status=result.status,
            reason=result.reason,
            injected=result.injected,
            reverted=result.reverted,
            revert_failures=result.revert_failures,
            toxiproxy_url=url,
            process_restarts=dict(result.process_restarts),
            stopped_by=result.stopped_by,
        )
        report = build_report(drill, facts, result.timeline, labels)
        write_json(report, run_dir / "report.json")
        write_markdown(report, run_dir / "report.md")
        write_html(report, run_dir / "report.html")
        write_junit(report, run_dir / "report.junit.xml")
        record_finished(report, location_of(history, runs_dir))  # a failure is logged and said, never fatal
        if metrics is not None:
            metrics.judged(report.verdicts, report.verdict)
        if pusher is not None:
            with (run_dir / "drill.log.jsonl").open("a", encoding="utf-8") as log_file:
                log_to(log_file)
                pusher.push()  # the last push, with the verdicts; a failure is logged, the verdict stands
        return report
    finally:
        os.environ.pop(RUN_MARKER, None)
        if watch is not None:
            watch.stop()
        control.close()  # a waiting `drillctl abort` learns the run is over, report written
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _refuse_if_cluster_frozen(cluster_freeze: ClusterFreeze) -> None:
    """Exit 3 while the cluster is frozen, or when its freeze cannot be read (a brake that cannot be read must
    not release), as for the machine's freeze."""
    try:
        frozen = asyncio.run(cluster_freeze.read())
    except BackendError as e:
        click.echo(f"error: cannot read the cluster's freeze ({cluster_freeze.where}): {e}", err=True)
        sys.exit(EXIT_PREFLIGHT)
    if frozen is not None:
        click.echo(
            f"error: drills are {frozen.describe()} ({cluster_freeze.where}); "
            f"`drillctl unfreeze --cluster -n {cluster_freeze.namespace}` lifts it",
            err=True,
        )
        sys.exit(EXIT_PREFLIGHT)


def _watch_cluster_freeze(cluster_freeze: ClusterFreeze, run_dir: Path) -> FreezeWatch:
    """The cluster's freeze watched from now on (the control FIFO is open): one that appears, or was made since
    the check (a watch begins with the object as it is), reaches the run as `drillctl freeze`'s request does. Sent
    by the FIFO's path, so a freeze seen as the run ends finds no run rather than a closed descriptor."""

    def on_freeze(freeze: Freeze) -> None:
        request_stops([run_dir], FREEZE, freeze.reason, wait=0.0)

    watch = FreezeWatch(cluster_freeze, on_freeze)
    watch.start()
    return watch


def _pusher(metrics: DrillMetrics | None, push: PushTarget | None, run_id: str) -> Pusher | None:
    if push is None:
        return None
    if metrics is None:
        raise ValueError("pushing to a Pushgateway needs the run's metrics")
    from orchestrator.metrics import Pusher  # prometheus-client, only for runs that push

    return Pusher(metrics, push, run_id)


class _Signals:
    """SIGINT and SIGTERM only ever request a stop, for the whole run and its report.

    Installed with `signal.signal` rather than `loop.add_signal_handler`: closing the loop puts
    the default handler back (KeyboardInterrupt), so a second Ctrl-C in that moment would cut the
    run short before its report. A signal before the engine exists stops it as soon as it does;
    one after the rollback changes nothing.
    """

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.early: Stop | None = None

    def engine_started(self, engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
        self.engine, self.loop = engine, loop
        if self.early is not None:
            engine.stop_for(self.early)

    def __call__(self, signum: int, _: object) -> None:
        name = signal.Signals(signum).name
        stop = Stop("signal", name, None, f"{name} received")
        engine, loop = self.engine, self.loop
        if engine is None or loop is None or loop.is_closed():
            self.early = self.early or stop
            return
        with contextlib.suppress(RuntimeError):  # the loop closed under us: the rollback is over
            loop.call_soon_threadsafe(engine.stop_for, stop)


def start_watchdog(run_dir: Path) -> subprocess.Popen[bytes]:
    """The dead man's switch: it rolls the run back if this process dies without saying `done`.

    In a session of its own, so the Ctrl-C that the terminal sends to our process group
    does not reach it.
    """
    log = (run_dir / "logs").joinpath("watchdog.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            # -P: the working directory is not put first on sys.path, so the watchdog is this drillctl's own
            # code, never an `orchestrator/` folder that happens to be where the run was started.
            [sys.executable, "-P", "-m", "orchestrator.watchdog", str(run_dir), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


WATCHDOG_WAIT = 90.0
"""After `done` the watchdog retries reverts that failed in the run (each under its own deadline)."""


def stop_watchdog(watchdog: subprocess.Popen[bytes], clean: bool) -> None:
    """After a clean end, say `done` and wait; after a crash, close the pipe and leave: the watchdog
    waits for this process to exit (its journal lock goes with it), then rolls back."""
    if not clean:
        if watchdog.stdin is not None:
            watchdog.stdin.close()
        return
    Link(watchdog.stdin).done()
    try:
        watchdog.wait(timeout=WATCHDOG_WAIT)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait(timeout=5)


async def _run(
    drill: LoadedDrill,
    run_id: str,
    run_dir: Path,
    toxiproxy_url: str | None,
    view: LiveView,
    link: Link,
    kube: KubeAccess,
    control: ControlChannel,
    signals: _Signals,
    started: datetime,
) -> tuple[RunResult, str | None]:
    spec = drill.spec.spec
    url: str | None = toxiproxy_url or spec.toxiproxy.url
    local: LocalToxiproxy | None = None
    beats = asyncio.create_task(heartbeat(link))
    aborts: asyncio.Task[None] | None = None
    try:
        if not spec.proxies:
            url = None  # every Toxiproxy fault acts on a declared proxy: none declared, none contacted
        elif url == "auto":
            local = LocalToxiproxy(run_dir / "logs" / "toxiproxy.log", spec.seed)
            view.event("toxiproxy_starting", binary=str(local.binary))
            url = await local.start()
            if local.pid is not None:
                link.started(local.pid)
        toxiproxy = ToxiproxyClient(url or UNUSED_TOXIPROXY, spec.toxiproxy.timeout)
        fleet = LocalFleet(spec.targets.local, drill.folder, run_dir)
        fleet.announce_to(link.started)
        engine = Engine(
            drill=drill,
            run_id=run_id,
            run_dir=run_dir,
            toxiproxy=toxiproxy,
            drivers=build_registry(toxiproxy, fleet, spec.seed, kube),
            fleet=fleet,
            observer=view,
            kube=kube,
            guardian=link,
            fail_at=os.environ.get(TEST_FAIL_AT) or None,
        )
        engine.observer = LiveStatus(run_dir, run_id, drill, started, view, engine.now, lambda: engine.t0)
        engine.recorder.listeners.append(view.sample)
        signals.engine_started(engine, asyncio.get_running_loop())
        aborts = asyncio.create_task(
            control.listen(
                lambda reason: engine.stop_for(Stop("abort", "drillctl abort", None, reason)),
                lambda reason: engine.stop_for(Stop("abort", "drillctl freeze", None, reason)),
            )
        )
        return await engine.run(), url
    except PreflightError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_PREFLIGHT)
    finally:
        signals.engine = None
        for task in (beats, aborts):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if local is not None:
            await local.stop()
