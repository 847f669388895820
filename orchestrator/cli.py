"""drillctl: the command line. Owns exit codes, run directories and the building of clients.

Exit codes: 0 every SLA passed; 1 an SLA failed; 2 invalid spec or usage; 3 preflight,
baseline or infrastructure failure (nothing injected); 4 aborted after injection (all reverted).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from orchestrator import __version__
from orchestrator.console import LiveView
from orchestrator.engine import Engine, RunResult
from orchestrator.errors import PreflightError, SpecError
from orchestrator.faults.registry import build_registry
from orchestrator.loading import LoadedDrill, find_drills, load_drill
from orchestrator.logs import log_to, silence
from orchestrator.model.durations import format_duration
from orchestrator.model.spec import DrillSpec
from orchestrator.reporting.json_report import to_json, write_json
from orchestrator.reporting.junit import write_junit
from orchestrator.reporting.markdown import write_markdown
from orchestrator.reporting.report import EXIT_INVALID, EXIT_PREFLIGHT, Report, RunFacts, build_report
from orchestrator.targets.local import LocalFleet
from orchestrator.toxiproxy_client import ToxiproxyClient
from orchestrator.toxiproxy_server import LocalToxiproxy

UNUSED_TOXIPROXY = "http://127.0.0.1:8474"
"""Address given to drivers of a drill without proxies; they never call it."""

OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json prints one machine-readable document on stdout",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="drillctl")
def cli() -> None:
    """Chaos and failover drills that prove recovery within an SLA.

    A drill (YAML, see `drillctl schema`) checks steady state, injects faults, reverts them,
    measures how the system recovered and judges that against SLAs. Reports link every
    breach and every fault to the runbook section the on-call needs.

    \b
    Start here:
      drillctl validate drills/              check every drill, touch nothing
      drillctl plan drills/examples/quickstart.yaml   what a run would do and touch
      drillctl run drills/examples/quickstart.yaml    run it; report in runs/<drill>-<time>/

    \b
    Exit codes: 0 SLAs passed, 1 an SLA failed, 2 invalid drill or usage,
    3 preflight/baseline failure (nothing injected), 4 aborted after injection (all reverted).
    Colour is off when NO_COLOR is set or stderr is not a terminal.
    """


def main() -> None:
    cli(prog_name="drillctl")


# --- validate -----------------------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@OUTPUT
def validate(paths: tuple[Path, ...], output: str) -> None:
    """Check drill files (or every *.yaml under folders) without touching anything.

    Each problem names the file, the line and the field. Exit 2 if any drill is invalid.
    """
    silence()
    results: list[dict[str, Any]] = []
    for path in find_drills(list(paths)):
        try:
            drill = load_drill(path)
            results.append({"file": str(path), "valid": True, "drill": drill.spec.name, "issues": []})
        except SpecError as e:
            issues = [{"line": i.line, "field": i.field, "message": i.message} for i in e.issues]
            results.append({"file": str(path), "valid": False, "issues": issues})
    if output == "json":
        click.echo(json.dumps({"drills": results}, indent=1))
    else:
        for r in results:
            if r["valid"]:
                click.echo(f"ok      {r['file']} ({r['drill']})")
            else:
                click.echo(f"invalid {r['file']}")
                for i in r["issues"]:
                    where = f"{r['file']}:{i['line']}" if i["line"] else r["file"]
                    click.echo(f"  {where}: {i['field'] + ': ' if i['field'] else ''}{i['message']}")
    if not results:
        raise click.UsageError("no drill files found")
    if not all(r["valid"] for r in results):
        sys.exit(EXIT_INVALID)


def _load_or_exit(path: Path) -> LoadedDrill:
    try:
        return load_drill(path)
    except SpecError as e:
        for issue in e.issues:
            click.echo(f"error: {issue}", err=True)
        sys.exit(EXIT_INVALID)


# --- schema -------------------------------------------------------------------------------------


@cli.command()
def schema() -> None:
    """Print the JSON Schema of drill files, for editor completion and CI checks.

    \b
    With the YAML language server, for instance:
      drillctl schema > drill.schema.json
      # yaml-language-server: $schema=./drill.schema.json
    """
    document = DrillSpec.model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "drillctl Drill (apiVersion drillctl.dev/v1)"
    click.echo(json.dumps(document, indent=1))


# --- plan ---------------------------------------------------------------------------------------


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--toxiproxy-url", help="Toxiproxy API to use instead of the drill's toxiproxy.url")
@OUTPUT
def plan(file: Path, toxiproxy_url: str | None, output: str) -> None:
    """Print the schedule and every object a run would touch. Touches nothing."""
    silence()
    drill = _load_or_exit(file)
    spec = drill.spec.spec
    url = toxiproxy_url or spec.toxiproxy.url
    fleet = LocalFleet(spec.targets.local, drill.folder, Path("runs") / "plan")
    registry = build_registry(ToxiproxyClient(url if url != "auto" else UNUSED_TOXIPROXY), fleet)
    baseline = spec.phases.baseline
    fault_len = drill.spec.fault_phase_length()
    steps: list[dict[str, Any]] = [
        {"at": 0.0, "what": f"baseline for {format_duration(baseline)}: steady state must hold"}
    ]
    for f in sorted(spec.faults, key=lambda f: f.start):
        begin = baseline + f.start
        steps.append(
            {
                "at": begin,
                "until": begin + f.duration,
                "fault": f.name,
                "type": f.type,
                "what": registry.for_fault(f).describe(f),
                "runbook": f.runbook,
            }
        )
    steps.append(
        {
            "at": baseline + fault_len,
            "what": f"recovery: observe until every SLA is decided, at most {format_duration(spec.phases.recovery)}",
        }
    )
    touches: dict[str, Any] = {
        "toxiproxy": (
            "none (no proxies)"
            if not spec.proxies
            else "a private toxiproxy-server on a free loopback port"
            if url == "auto"
            else url
        ),
        "proxies": [{"name": p.name, "listen": p.listen, "upstream": p.upstream} for p in spec.proxies],
        "processes": [{"name": p.name, "argv": p.argv, "cwd": p.cwd or "."} for p in spec.targets.local.processes],
        "probes": [p.model_dump(mode="json") for p in spec.steady_state.probes],
    }
    if output == "json":
        click.echo(json.dumps({"drill": drill.spec.name, "schedule": steps, "touches": touches}, indent=1))
        return
    click.echo(f"Drill {drill.spec.name} ({file})")
    click.echo(f"  longest run: about {format_duration(baseline + fault_len + spec.phases.recovery)} after setup")
    click.echo("Schedule (offsets from the first sample):")
    for step in steps:
        until = f"-{step['until']:.3f}s" if "until" in step else ""
        click.echo(f"  {step['at']:8.3f}s{until:>10}  {step.get('fault', '')} {step['what']}".rstrip())
    click.echo("Touches:")
    click.echo(f"  toxiproxy: {touches['toxiproxy']}")
    for p in touches["proxies"]:
        click.echo(f"  proxy {p['name']}: listen {p['listen']} -> upstream {p['upstream']} (created if absent)")
    for p in touches["processes"]:
        click.echo(f"  process {p['name']}: {' '.join(p['argv'])} (cwd {p['cwd']})")
    for p in spec.steady_state.probes:
        click.echo(f"  probe {p.name} ({p.type}) every {format_duration(spec.steady_state.interval)}")


# --- run ----------------------------------------------------------------------------------------


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--toxiproxy-url", help="Toxiproxy API to use instead of the drill's toxiproxy.url ('auto' starts one)")
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("runs"),
    show_default=True,
    help="where run directories are created",
)
@click.option("--quiet", "-q", is_flag=True, help="no live view on stderr")
@OUTPUT
def run(file: Path, toxiproxy_url: str | None, runs_dir: Path, quiet: bool, output: str) -> None:
    """Run a drill end to end and write its report.

    \b
    Phases: preflight (nothing injected) -> start local targets -> baseline (steady state
    must hold) -> faults on schedule -> revert every fault -> recovery -> report.
    Ctrl-C or SIGTERM at any point reverts every injected fault before exiting (code 4).
    The run directory holds report.json, report.md, report.junit.xml, journal.jsonl
    (undo records, written before each injection), drill.log.jsonl and process logs.
    """
    drill = _load_or_exit(file)
    started = datetime.now(UTC)
    run_id = f"{drill.spec.name}-{started.strftime('%Y%m%dT%H%M%S')}Z"
    run_dir = runs_dir / run_id
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = runs_dir / f"{run_id}-{n}"
    run_id = run_dir.name
    run_dir.mkdir(parents=True)
    view = LiveView(quiet=quiet or output == "json")
    with (run_dir / "drill.log.jsonl").open("a", encoding="utf-8") as log_file:
        log_to(log_file)
        result, url = asyncio.run(_run(drill, run_id, run_dir, toxiproxy_url, view))
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
    write_junit(report, run_dir / "report.junit.xml")
    if output == "json":
        document = to_json(report)
        document.pop("samples")
        document["report_dir"] = str(run_dir)
        click.echo(json.dumps(document, indent=1))
    else:
        _summary(report, view)
    sys.exit(report.exit_code)


async def _run(
    drill: LoadedDrill, run_id: str, run_dir: Path, toxiproxy_url: str | None, view: LiveView
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
        toxiproxy = ToxiproxyClient(url or UNUSED_TOXIPROXY, spec.toxiproxy.timeout)
        fleet = LocalFleet(spec.targets.local, drill.folder, run_dir)
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


def _summary(report: Report, view: LiveView) -> None:
    status = report.status.upper()
    color = "green" if report.status == "passed" else "red"
    click.echo(view.paint(f"drill {report.drill.spec.name}: {status}", color))
    if report.facts.reason:
        click.echo(f"  reason: {report.facts.reason}")
    for v in report.verdicts:
        mark = view.paint("PASS", "green") if v.passed else view.paint("FAIL", "red")
        measured = "—" if v.measured is None else (f"{v.measured:.3f}s" if v.unit == "s" else f"{v.measured:.2%}")
        limit = f"{v.threshold:.3f}s" if v.unit == "s" else f"{v.threshold:.2%}"
        line = f"  {mark} {v.name}: {measured} (limit {limit})"
        link = report.runbook(v.runbook)
        if not v.passed and link is not None:
            line += f" -> {link.ref} ({link.heading})"
        click.echo(line)
    for step in report.facts.reverted:
        click.echo(f"  reverted {step}")
    for failure in report.facts.revert_failures:
        click.echo(view.paint(f"  REVERT FAILED {failure}", "red"))
    click.echo(f"report: {report.facts.run_dir / 'report.md'}")
