"""drillctl: the command line. Owns exit codes and what each command prints.

Each command imports what it needs when it runs, so `--help` and `validate` start fast.

Exit codes: 0 every SLA passed; 1 an SLA failed; 2 invalid spec or usage; 3 preflight,
baseline or infrastructure failure (nothing injected); 4 aborted after injection (all reverted).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from orchestrator import __version__
from orchestrator.exit_codes import EXIT_INVALID

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    from orchestrator.console import LiveView
    from orchestrator.loading import LoadedDrill
    from orchestrator.reporting.report import Report


def runs_dir_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--runs-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=Path("runs"),
        show_default=True,
        help=help_text,
    )


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
      drillctl recover                       revert what a crashed run left behind

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
    from orchestrator.errors import SpecError
    from orchestrator.loading import find_drills, load_drill
    from orchestrator.logs import silence

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
    from orchestrator.errors import SpecError
    from orchestrator.loading import load_drill

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
    from orchestrator.model.spec import DrillSpec

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
    from orchestrator.faults.registry import build_registry
    from orchestrator.logs import silence
    from orchestrator.model.durations import format_duration
    from orchestrator.runner import UNUSED_TOXIPROXY
    from orchestrator.targets.local import LocalFleet
    from orchestrator.toxiproxy_client import ToxiproxyClient

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
        "processes": [
            {
                "name": p.name,
                "argv": p.argv,
                "cwd": p.cwd or ".",
                "libfaketime": p.clock == "faketime",
                "cgroup_memory_limit": p.memory_limit,
            }
            for p in spec.targets.local.processes
        ],
        "nodes": [{"name": n.name, "processes": n.processes, "proxies": n.proxies} for n in spec.targets.local.nodes],
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
        extras = ["under libfaketime, its wall clock from an offset file"] if p["libfaketime"] else []
        if p["cgroup_memory_limit"]:
            extras.append(f"in a cgroup of its own, memory limit {p['cgroup_memory_limit']}")
        extra = "; " + "; ".join(extras) if extras else ""
        click.echo(f"  process {p['name']}: {' '.join(p['argv'])} (cwd {p['cwd']}{extra})")
    for n in touches["nodes"]:
        proxies = f", behind proxies {', '.join(n['proxies'])}" if n["proxies"] else ""
        click.echo(f"  node {n['name']}: processes {', '.join(n['processes'])}{proxies}")
    for p in spec.steady_state.probes:
        click.echo(f"  probe {p.name} ({p.type}) every {format_duration(spec.steady_state.interval)}")


# --- run ----------------------------------------------------------------------------------------


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--toxiproxy-url", help="Toxiproxy API to use instead of the drill's toxiproxy.url ('auto' starts one)")
@runs_dir_option("where run directories are created")
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
    from orchestrator.console import LiveView
    from orchestrator.runner import run_drill

    drill = _load_or_exit(file)
    view = LiveView(quiet=quiet or output == "json")
    report = run_drill(drill, runs_dir, toxiproxy_url, view)
    if output == "json":
        from orchestrator.reporting.json_report import to_json

        document = to_json(report)
        document.pop("samples")
        document["report_dir"] = str(report.facts.run_dir)
        click.echo(json.dumps(document, indent=1))
    else:
        _summary(report, view)
    sys.exit(report.exit_code)


# --- recover ------------------------------------------------------------------------------------


@cli.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(path_type=Path, file_okay=False, exists=True))
@runs_dir_option("without RUN_DIRS: settle every run under this folder that left faults behind")
@OUTPUT
def recover(run_dirs: tuple[Path, ...], runs_dir: Path, output: str) -> None:
    """Revert faults that a run left behind, from its journal alone.

    A run reverts its own faults on success, error, Ctrl-C and SIGTERM, and its watchdog does
    so if the run is killed with SIGKILL. This is for what is still left: a host that crashed,
    a revert that failed. Each journal's undo records are reverted newest first, and the
    outcome is written back to the journal. A run that is still alive is left alone.
    Exit 0 when everything is settled, 1 when a revert failed or a run is still alive.
    """
    import asyncio

    from orchestrator.logs import silence
    from orchestrator.recovery import JOURNAL, settle, unsettled

    silence()
    journals = [d / JOURNAL for d in run_dirs] if run_dirs else unsettled(runs_dir)
    results = [asyncio.run(settle(path)) for path in journals if path.exists()]
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "journals": [
                        {"journal": str(r.journal), "reverted": r.reverted, "failed": r.failed, "busy": r.busy}
                        for r in results
                    ]
                },
                indent=1,
            )
        )
    else:
        if not results:
            click.echo("nothing to recover")
        for r in results:
            click.echo(f"{r.journal.parent}:")
            if r.busy:
                click.echo("  still held by a live drillctl process: left alone")
            click.echo("".join(f"  reverted {step}\n" for step in r.reverted), nl=False)
            click.echo("".join(f"  REVERT FAILED {failure}\n" for failure in r.failed), nl=False)
            if not (r.busy or r.reverted or r.failed):
                click.echo("  nothing left to revert")
    sys.exit(1 if any(r.failed or r.busy for r in results) else 0)


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
