"""Runs one drill: run directory, logs, Toxiproxy (private or given), engine, signals, reports."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from orchestrator.console import LiveView
from orchestrator.engine import Engine, RunResult
from orchestrator.errors import PreflightError
from orchestrator.exit_codes import EXIT_PREFLIGHT
from orchestrator.faults.registry import build_registry
from orchestrator.loading import LoadedDrill
from orchestrator.logs import log_to
from orchestrator.recovery import unsettled
from orchestrator.reporting.html import write_html
from orchestrator.reporting.json_report import write_json
from orchestrator.reporting.junit import write_junit
from orchestrator.reporting.markdown import write_markdown
from orchestrator.reporting.report import Report, RunFacts, build_report
from orchestrator.targets.local import LocalFleet
from orchestrator.toxiproxy_client import ToxiproxyClient
from orchestrator.toxiproxy_server import LocalToxiproxy
from orchestrator.watchdog import Link

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


def run_drill(drill: LoadedDrill, runs_dir: Path, toxiproxy_url: str | None, view: LiveView) -> Report:
    left = unsettled(runs_dir)
    if left:
        where = ", ".join(str(p.parent) for p in left)
        click.echo(
            f"error: earlier runs left faults that were never reverted ({where}); "
            f"run `drillctl recover --runs-dir {runs_dir}` first",
            err=True,
        )
        sys.exit(EXIT_PREFLIGHT)
    started = datetime.now(UTC)
    run_dir = new_run_dir(runs_dir, drill.spec.name, started)
    run_id = run_dir.name
    watchdog = start_watchdog(run_dir)
    try:
        with (run_dir / "drill.log.jsonl").open("a", encoding="utf-8") as log_file:
            log_to(log_file)
            result, url = asyncio.run(_run(drill, run_id, run_dir, toxiproxy_url, view, Link(watchdog.stdin)))
    finally:
        stop_watchdog(watchdog)  # whatever ended the run, it rolled back itself
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
    )
    report = build_report(drill, facts, result.timeline)
    write_json(report, run_dir / "report.json")
    write_markdown(report, run_dir / "report.md")
    write_html(report, run_dir / "report.html")
    write_junit(report, run_dir / "report.junit.xml")
    return report


def start_watchdog(run_dir: Path) -> subprocess.Popen[bytes]:
    """The dead man's switch: it rolls the run back if this process dies without saying `done`.

    In a session of its own, so the Ctrl-C that the terminal sends to our process group
    does not reach it.
    """
    log = (run_dir / "logs").joinpath("watchdog.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator.watchdog", str(run_dir)],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_watchdog(watchdog: subprocess.Popen[bytes]) -> None:
    Link(watchdog.stdin).done()
    try:
        watchdog.wait(timeout=10)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait(timeout=5)


async def _run(
    drill: LoadedDrill, run_id: str, run_dir: Path, toxiproxy_url: str | None, view: LiveView, link: Link
) -> tuple[RunResult, str | None]:
    spec = drill.spec.spec
    url: str | None = toxiproxy_url or spec.toxiproxy.url
    local: LocalToxiproxy | None = None
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
            drivers=build_registry(toxiproxy, fleet, spec.seed),
            fleet=fleet,
            observer=view,
        )
        engine.recorder.listeners.append(view.sample)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, engine.request_stop, f"received {signal.Signals(sig).name}")
        return await engine.run(), url
    except PreflightError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_PREFLIGHT)
    finally:
        if local is not None:
            await local.stop()
