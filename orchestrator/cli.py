"""drillctl: the command line. Owns exit codes and what each command prints.

Each command imports what it needs when it runs, so `--help` and `validate` start fast.

Exit codes: 0 every SLA passed; 1 an SLA failed; 2 invalid spec or usage; 3 preflight,
baseline or infrastructure failure (nothing injected); 4 aborted after injection (all reverted).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from orchestrator import __version__
from orchestrator.exit_codes import EXIT_INVALID, EXIT_PREFLIGHT

F = TypeVar("F", bound=Callable[..., Any])
L = TypeVar("L")

if TYPE_CHECKING:
    from orchestrator.comparison import Tolerance
    from orchestrator.console import LiveView
    from orchestrator.faults.base import DriverRegistry
    from orchestrator.gameday.lease import Holder, LeaseHolder
    from orchestrator.gameday.plan import LoadedGameDay
    from orchestrator.history.store import HistoryStore
    from orchestrator.kube.access import KubeAccess
    from orchestrator.kube.freeze import ClusterFreeze
    from orchestrator.kube.leftovers import Leftover
    from orchestrator.kube.plan import FaultPlan
    from orchestrator.loading import LoadedDrill
    from orchestrator.metrics import PushTarget
    from orchestrator.model.spec import FaultSpec
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


def kube_options(f: F) -> F:
    """kubectl's flags, with kubectl's precedence: flag, then the drill, then the kubeconfig."""
    f = click.option("--namespace", "-n", help="namespace for pod selections that name none (default: the drill's)")(f)
    f = click.option("--context", help="kubeconfig context (default: the drill's, else the current context)")(f)
    return click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False),
        envvar="KUBECONFIG",
        help="kubeconfig file(s), colon-separated (default: $KUBECONFIG, else ~/.kube/config; in a pod: "
        "its service account)",
    )(f)


def push_options(f: F) -> F:
    f = click.option("--push-every", default="10s", show_default=True, help="with --pushgateway: push this often")(f)
    return click.option(
        "--pushgateway",
        metavar="URL",
        envvar="DRILLCTL_PUSHGATEWAY",
        help="push each run's metrics to this Prometheus Pushgateway (job drillctl, grouped by drill and run "
        "id) during the run and at its end; a failed push is logged and never changes the verdict",
    )(f)


def _push_target(pushgateway: str | None, push_every: str) -> PushTarget | None:
    from orchestrator.metrics import PushTarget
    from orchestrator.model.durations import parse_duration

    if not pushgateway:
        return None
    try:
        every = parse_duration(push_every)
    except ValueError as e:
        raise click.UsageError(f"--push-every: {e}") from e
    if every <= 0:
        raise click.UsageError("--push-every must be longer than 0s")
    return PushTarget(pushgateway, every)


def label_option(help_text: str) -> Callable[[F], F]:
    """`--label key=value`, repeatable, parsed into a dict."""

    def parse(_: click.Context, __: click.Parameter, items: tuple[str, ...]) -> dict[str, str]:
        from orchestrator.history.arguments import parse_labels

        try:
            return parse_labels(items)
        except ValueError as e:
            raise click.BadParameter(str(e)) from e

    return click.option("--label", "labels", metavar="KEY=VALUE", multiple=True, callback=parse, help=help_text)


HISTORY = click.option(
    "--history",
    metavar="PATH|URL",
    envvar="DRILLCTL_HISTORY",
    help="the history store: an SQLite file, or postgresql://user:pass@host/db for a shared one"
    " (default: <runs-dir>/history.sqlite; also $DRILLCTL_HISTORY)",
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
    Relative paths in a drill are relative to the drill file's folder: a process's or restart's
    cwd, a pidfile, the argv of command probes, resolvers and workload clients (which run there),
    and runbooks (looked for from there up). A drill means the same from any folder.

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

    # No logs.silence() here: nothing on this path logs, and importing structlog (and asyncio with
    # it) was a tenth of validate's start-up; tests/test_cli_startup.py keeps it out.
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
    from orchestrator.loading import load_drill

    return _valid_or_exit(load_drill, path)


def _valid_or_exit(load: Callable[[Path], L], path: Path) -> L:
    """What `load` reads from a drill or game-day file, or exit 2 with every problem in it on stderr."""
    from orchestrator.errors import SpecError

    try:
        return load(path)
    except SpecError as e:
        for issue in e.issues:
            click.echo(f"error: {issue}", err=True)
        sys.exit(EXIT_INVALID)


# --- rules --------------------------------------------------------------------------------------


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["rules", "prometheusrule"]),
    default="rules",
    show_default=True,
    help="a plain rules file, or a Prometheus Operator PrometheusRule manifest",
)
@click.option("--window", default="1h", show_default=True, help="a breached SLA alerts this long after its run")
@click.option(
    "--silent-for",
    default="5m",
    show_default=True,
    help="a run with a fault active that has not pushed for this long counts as ended",
)
@click.option("--runbook-base", metavar="URL", help="prefix of the SLAs' runbook links, for runbook_url")
@click.option("--namespace", "-n", help="with --format prometheusrule: the manifest's namespace")
def rules(file: Path, fmt: str, window: str, silent_for: str, runbook_base: str | None, namespace: str | None) -> None:
    """Prometheus alerting rules for a drill or a game day (FILE), on the metrics its runs push.

    \b
    DrillctlSlaBreached (warning), one per SLA: the SLA failed in a run pushed within --window.
    DrillctlFaultActiveAfterRun (critical), one per drill with faults: a fault is still active
    after its run ended (a revert failed), or the run went silent for --silent-for mid-fault.
    They read the Pushgateway that runs push to (--pushgateway; the chart's metrics.pushgateway.url),
    scraped with honor_labels: true. Check them with `promtool check rules`.
      drillctl rules drills/gamedays/release-rehearsal.yaml > drillctl-rules.yaml
      drillctl rules drills/gamedays/release-rehearsal.yaml --format prometheusrule -n monitoring | kubectl apply -f -
    Exit 2 when FILE is not a valid drill or game day.
    """
    from orchestrator.loading import is_gameday
    from orchestrator.model.durations import parse_duration
    from orchestrator.rules import RuleOptions, prometheus_rule, rules_file

    try:
        options = RuleOptions(parse_duration(window), parse_duration(silent_for), runbook_base)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    if is_gameday(file):
        from orchestrator.gameday.plan import load_gameday

        loaded = _valid_or_exit(load_gameday, file)
        name, drills = f"gameday-{loaded.spec.name}", [d.spec for d in loaded.drills]
    else:
        drill = _load_or_exit(file)
        name, drills = drill.spec.name, [drill.spec]
    text = rules_file(name, drills, options) if fmt == "rules" else prometheus_rule(name, drills, options, namespace)
    click.echo(text, nl=False)


# --- schema -------------------------------------------------------------------------------------


@cli.command()
@click.option("--report", "of_report", is_flag=True, help="the schema of report.json (drillctl.report/v1) instead")
def schema(of_report: bool) -> None:
    """Print the JSON Schema of drill files, for editor completion and CI checks.

    \b
    With the YAML language server, for instance:
      drillctl schema > drill.schema.json
      # yaml-language-server: $schema=./drill.schema.json
    """
    if of_report:
        from orchestrator.reporting.report_schema import REPORT_SCHEMA

        click.echo(json.dumps(REPORT_SCHEMA, indent=1))
        return
    from orchestrator.model.spec import DrillSpec

    document = DrillSpec.model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "drillctl Drill (apiVersion drillctl.dev/v1)"
    click.echo(json.dumps(document, indent=1))


# --- plan ---------------------------------------------------------------------------------------


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--toxiproxy-url", help="Toxiproxy API to use instead of the drill's toxiproxy.url")
@click.option(
    "--resolve",
    is_flag=True,
    help="run every target resolver now and print what it would pick (exit 3 if one cannot answer); "
    "still injects nothing",
)
@kube_options
@OUTPUT
def plan(
    file: Path,
    toxiproxy_url: str | None,
    resolve: bool,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    output: str,
) -> None:
    """Print the schedule and every object a run would touch. Touches nothing.

    A fault whose target is given by a resolver shows the resolver; with --resolve, what it picks now.
    """
    from orchestrator.faults.registry import build_registry
    from orchestrator.kube.access import KubeAccess
    from orchestrator.logs import redact, silence
    from orchestrator.model.durations import format_duration
    from orchestrator.runner import UNUSED_TOXIPROXY, kube_access
    from orchestrator.targets.local import LocalFleet
    from orchestrator.toxiproxy_client import ToxiproxyClient

    silence()
    drill = _load_or_exit(file)
    spec = drill.spec.spec
    url = toxiproxy_url or spec.toxiproxy.url
    fleet = LocalFleet(spec.targets.local, drill.folder, Path("runs") / "plan")
    kube = kube_access(drill, KubeAccess(kubeconfig, context, namespace))
    registry = build_registry(ToxiproxyClient(url if url != "auto" else UNUSED_TOXIPROXY), fleet, spec.seed, kube)
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
                "env": dict(p.env),
                "cwd": p.cwd or ".",
                "libfaketime": p.clock == "faketime",
                "cgroup_memory_limit": p.memory_limit,
            }
            for p in spec.targets.local.processes
        ],
        "adopted": [a.model_dump(mode="json", exclude_none=True) for a in spec.targets.local.adopted],
        "nodes": [{"name": n.name, "processes": n.processes, "proxies": n.proxies} for n in spec.targets.local.nodes],
        "probes": [p.model_dump(mode="json") for p in spec.steady_state.probes],
    }
    kube_plans = _kube_plans(registry, spec.faults)
    if kube_plans:
        touches["kubernetes"] = [kp.to_json() for kp in kube_plans]
    resolvers = _resolver_plans(registry, spec.faults, resolve)
    if resolvers:
        touches["resolvers"] = resolvers
    workload = _workload_plan(drill)
    if workload is not None:
        touches["workload"] = workload
    refused = any(kp.refusals for kp in kube_plans) or any("error" in r for r in resolvers)
    # A plan is pasted into tickets and chats: credentials in URLs, argv and env are hidden as in logs and reports.
    steps, touches = redact(steps), redact(touches)
    alerting, alert_lines = _alert_section(drill)
    if output == "json":
        document = {"drill": drill.spec.name, "schedule": steps, "touches": touches}
        click.echo(json.dumps({**document, **({} if alerting is None else {"alerts": alerting})}, indent=1))
        sys.exit(EXIT_PREFLIGHT if refused else 0)
    click.echo(f"Drill {drill.spec.name} ({file})")
    click.echo(f"  longest run: about {format_duration(baseline + fault_len + spec.phases.recovery)} after setup")
    click.echo("Schedule (offsets from the first sample):")
    width = max((len(f" → {s['until']:.3f}s") for s in steps if "until" in s), default=0)
    for step in steps:
        # A fault's window reads `3.500s → 7.500s`: a dash there read as a negative offset.
        until = f" → {step['until']:.3f}s" if "until" in step else ""
        click.echo(f"  {step['at']:8.3f}s{until:<{width}}  {step.get('fault', '')} {step['what']}".rstrip())
    click.echo("Touches:")
    click.echo(f"  toxiproxy: {touches['toxiproxy']}")
    for p in touches["proxies"]:
        click.echo(f"  proxy {p['name']}: listen {p['listen']} -> upstream {p['upstream']} (created if absent)")
    for p in touches["processes"]:
        extras = ["under libfaketime, its wall clock from an offset file"] if p["libfaketime"] else []
        if p["cgroup_memory_limit"]:
            extras.append(f"in a cgroup of its own, memory limit {p['cgroup_memory_limit']}")
        extras += [f"env {', '.join(f'{k}={v}' for k, v in p['env'].items())}"] if p["env"] else []
        extra = "; " + "; ".join(extras) if extras else ""
        click.echo(f"  process {p['name']}: {' '.join(p['argv'])} (cwd {p['cwd']}{extra})")
    for n in touches["nodes"]:
        proxies = f", behind proxies {', '.join(n['proxies'])}" if n["proxies"] else ""
        click.echo(f"  node {n['name']}: processes {', '.join(n['processes'])}{proxies}")
    for p in spec.steady_state.probes:
        click.echo(f"  probe {p.name} ({p.type}) every {format_duration(spec.steady_state.interval)}")
    for line in _adopted_and_resolver_lines(touches):
        click.echo(f"  {line}")
    for line in _workload_lines(touches):
        click.echo(f"  {line}")
    click.echo("".join(f"{line}\n" for line in alert_lines), nl=False)
    if kube_plans:
        seed = "" if spec.seed is not None else " (the drill has no seed: a run picks its own, and may choose others)"
        click.echo(f"Kubernetes objects, resolved in the cluster now{seed}:")
        click.echo("".join(f"  {redact(line)}\n" for kp in kube_plans for line in kp.lines()), nl=False)
    if refused:
        click.echo("error: a run would stop in preflight (see REFUSED above); nothing was touched", err=True)
        sys.exit(EXIT_PREFLIGHT)


def _resolver_plans(registry: DriverRegistry, faults: Sequence[FaultSpec], ask: bool) -> list[dict[str, Any]]:
    import asyncio

    from orchestrator.faults.resolving import plan_resolvers

    return asyncio.run(plan_resolvers(registry, faults, ask))


def _adopted_and_resolver_lines(touches: dict[str, Any]) -> list[str]:
    from orchestrator.faults.resolving import plan_lines

    return plan_lines(touches["adopted"], touches.get("resolvers", []))


def _alert_section(drill: LoadedDrill) -> tuple[dict[str, Any] | None, list[str]]:
    """The drill's alerting (sources, receiver, alert SLAs, stop conditions, preflight refusals), redacted: the
    plan's `alerts` document (None: it watches no alert) and its text lines."""
    from orchestrator.alerts.plan import alert_plan, alert_plan_lines
    from orchestrator.logs import redact

    found = alert_plan(drill.spec)
    if found is None:
        return None, []
    hidden = redact(found)
    return hidden, alert_plan_lines(hidden)


def _workload_plan(drill: LoadedDrill) -> dict[str, Any] | None:
    """The workload a run would send (schedule, keys, client options, read-back, its SLAs); None without one."""
    from orchestrator.workloads.plan import workload_plan

    return workload_plan(drill.spec)


def _workload_lines(touches: dict[str, Any]) -> list[str]:
    from orchestrator.workloads.plan import workload_lines

    return workload_lines(touches["workload"]) if "workload" in touches else []


def _kube_plans(registry: DriverRegistry, faults: Sequence[FaultSpec]) -> list[FaultPlan]:
    """The exact objects each Kubernetes fault would touch now, read-only."""
    import asyncio

    from orchestrator.kube.plan import plan_faults

    kube_faults = [f for f in faults if f.backend != "local"]
    return asyncio.run(plan_faults(registry, kube_faults)) if kube_faults else []


# --- run ----------------------------------------------------------------------------------------


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--toxiproxy-url", help="Toxiproxy API to use instead of the drill's toxiproxy.url ('auto' starts one)")
@runs_dir_option("where run directories are created")
@kube_options
@click.option("--yes", is_flag=True, help="confirm a run in a protected Kubernetes context (e.g. one matching *prod*)")
@click.option("--quiet", "-q", is_flag=True, help="no live view on stderr")
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="serve Prometheus metrics of the run on this port")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="address the metrics endpoint binds")
@click.option(
    "--metrics-linger",
    default="0s",
    show_default=True,
    help="keep serving metrics this long after the run, so a last scrape sees the SLA verdicts",
)
@click.option(
    "--freeze-namespace",
    default="default",
    show_default=True,
    envvar="DRILLCTL_FREEZE_NAMESPACE",
    help="a drill that uses Kubernetes honours the cluster's freeze: ConfigMap drillctl-freeze in this namespace "
    "(`drillctl freeze --cluster -n`; the game days' lease namespace)",
)
@push_options
@label_option("recorded with the run in the history, e.g. --label release=1.4 --label cluster=staging (repeatable)")
@HISTORY
@OUTPUT
def run(
    file: Path,
    toxiproxy_url: str | None,
    runs_dir: Path,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    yes: bool,
    freeze_namespace: str,
    quiet: bool,
    metrics_port: int | None,
    metrics_host: str,
    metrics_linger: str,
    pushgateway: str | None,
    push_every: str,
    labels: dict[str, str],
    history: str | None,
    output: str,
) -> None:
    """Run a drill end to end and write its report.

    \b
    Phases: preflight (nothing injected) -> start local targets -> baseline (steady state
    must hold) -> faults on schedule -> revert every fault -> recovery -> report.
    Ctrl-C or SIGTERM at any point reverts every injected fault before exiting (code 4).
    The run directory holds report.json, report.md, report.junit.xml, journal.jsonl
    (undo records, written before each injection), drill.log.jsonl and process logs.
    The run is then recorded, with its --label pairs, in the history (see `drillctl history`).

    \b
      drillctl run drills/examples/quickstart.yaml --label release=1.4 --label git=$(git rev-parse --short HEAD)
    """
    from orchestrator.console import LiveView
    from orchestrator.kube.access import KubeAccess
    from orchestrator.runner import kube_access, run_drill

    drill = _load_or_exit(file)
    view = LiveView(quiet=quiet or output == "json")
    metrics = push = server = None
    if metrics_port is not None or pushgateway:
        from orchestrator.metrics import DrillMetrics, MeteredView
        from orchestrator.model.durations import parse_duration

        metrics = DrillMetrics(drill.spec.name)
        view = MeteredView(metrics, quiet=view.quiet)
        push = _push_target(pushgateway, push_every)
    if metrics is not None and metrics_port is not None:
        import time

        try:
            linger = parse_duration(metrics_linger)
        except ValueError as e:
            raise click.UsageError(f"--metrics-linger: {e}") from e
        try:
            server = metrics.serve(metrics_port, metrics_host)
        except OSError as e:
            raise click.UsageError(f"--metrics-port {metrics_port}: {e.strerror or e}") from e
    kube = kube_access(drill, KubeAccess(kubeconfig, context, namespace), confirmed=yes)
    cluster_freeze = _drill_cluster_freeze(drill, kube, freeze_namespace)
    report = run_drill(
        drill, runs_dir, toxiproxy_url, view, kube, metrics, push, labels, history, cluster_freeze=cluster_freeze
    )
    if output == "json":
        from orchestrator.reporting.json_report import to_json

        document = to_json(report)
        document.pop("samples")
        document["report_dir"] = str(report.facts.run_dir)
        click.echo(json.dumps(document, indent=1))
    else:
        _summary(report, view)
    if server is not None:
        sys.stdout.flush()
        time.sleep(linger)  # a fixed hold for the last scrape, nothing to wait on
        server.shutdown()
    sys.exit(report.exit_code)


def _drill_cluster_freeze(drill: LoadedDrill, kube: KubeAccess, namespace: str) -> ClusterFreeze | None:
    """The cluster's freeze a lone run honours, if its drill uses Kubernetes. None too when no cluster is configured
    (no kubeconfig, an unknown context): the drill cannot touch one, and its preflight says so in its report."""
    from orchestrator.errors import PreflightError
    from orchestrator.gameday.plan import uses_kubernetes
    from orchestrator.kube.access import connect
    from orchestrator.kube.freeze import ClusterFreeze

    if not uses_kubernetes(drill.spec):
        return None
    try:
        return ClusterFreeze(connect(kube), namespace)
    except PreflightError:
        return None


# --- recover ------------------------------------------------------------------------------------


@cli.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(path_type=Path, file_okay=False, exists=True))
@runs_dir_option("without RUN_DIRS: settle every run under this folder that left faults behind")
@click.option(
    "--cluster",
    is_flag=True,
    help="also restore Kubernetes objects marked by runs that are dead (their journal under --runs-dir is not "
    "held) or expired, found in the cluster itself",
)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), envvar="KUBECONFIG", help="with --cluster")
@click.option("--context", help="with --cluster: kubeconfig context (default: the current context)")
@OUTPUT
def recover(
    run_dirs: tuple[Path, ...], runs_dir: Path, cluster: bool, kubeconfig: str | None, context: str | None, output: str
) -> None:
    """Revert faults that a run left behind, from its journal alone.

    A run reverts its own faults on success, error, Ctrl-C and SIGTERM, and its watchdog does
    so if the run is killed with SIGKILL. This is for what is still left: a host that crashed,
    a revert that failed. Each journal's undo records are reverted newest first, and the
    outcome is written back to the journal. A run that is still alive is left alone.
    Exit 0 when everything is settled, 1 when a revert (or a cluster restore) failed or a run is still alive.
    """
    import asyncio

    from orchestrator.journal import JOURNAL
    from orchestrator.logs import silence
    from orchestrator.recovery import settle, unsettled

    silence()
    journals = [d / JOURNAL for d in run_dirs] if run_dirs else unsettled(runs_dir)
    results = [asyncio.run(settle(path)) for path in journals if path.exists()]
    leftovers = _cluster_leftovers(runs_dir, kubeconfig, context) if cluster else None
    if output == "json":
        document: dict[str, Any] = {
            "journals": [
                {
                    "journal": str(r.journal),
                    "reverted": r.reverted,
                    "failed": r.failed,
                    "busy": r.busy,
                    "unreadable": r.unreadable,
                }
                for r in results
            ]
        }
        if leftovers is not None:
            document["cluster"] = [leftover.to_json() for leftover in leftovers]
        click.echo(json.dumps(document, indent=1))
    else:
        for leftover in leftovers or []:
            click.echo(f"{leftover.kind} {leftover.name} (run {leftover.run_id}, fault {leftover.fault}):")
            click.echo(f"  {leftover.verdict}: {leftover.action}")
        if not results and not leftovers:
            click.echo("nothing to recover")
        for r in results:
            click.echo(f"{r.journal.parent}:")
            if r.busy:
                click.echo("  still held by a live drillctl process: left alone")
            if r.unreadable:
                click.echo(f"  JOURNAL UNREADABLE, nothing reverted: {r.unreadable}")
            click.echo("".join(f"  reverted {step}\n" for step in r.reverted), nl=False)
            click.echo("".join(f"  REVERT FAILED {failure}\n" for failure in r.failed), nl=False)
            if not (r.busy or r.reverted or r.failed or r.unreadable):
                click.echo("  nothing left to revert")
    failed = any(r.failed or r.busy or r.unreadable for r in results) or any(
        leftover.failed for leftover in leftovers or []
    )
    sys.exit(1 if failed else 0)


def _cluster_leftovers(runs_dir: Path, kubeconfig: str | None, context: str | None) -> list[Leftover]:
    """`recover --cluster`: exit 3 when the cluster cannot be reached (nothing was touched)."""
    import asyncio
    from datetime import UTC, datetime

    from orchestrator.errors import BackendError, PreflightError
    from orchestrator.kube.access import KubeAccess, connect
    from orchestrator.kube.leftovers import recover_cluster

    try:
        conn = connect(KubeAccess(kubeconfig, context))
        return asyncio.run(recover_cluster(conn, runs_dir, datetime.now(UTC)))
    except (BackendError, PreflightError) as e:
        click.echo(f"error: cluster leftovers: {e}", err=True)
        sys.exit(EXIT_PREFLIGHT)


# --- abort --------------------------------------------------------------------------------------


@cli.command()
@click.argument("run")
@click.option("--reason", default="aborted by hand", show_default=True, help="recorded in the run's report")
@click.option(
    "--wait", "wait_seconds", type=float, default=120.0, show_default=True, help="seconds to wait for the run to end"
)
@runs_dir_option("where RUN is looked up when it is a run id")
def abort(run: str, reason: str, wait_seconds: float, runs_dir: Path) -> None:
    """Stop a live run (RUN: its directory or id): every fault reverted at once, exit 4.

    Waits until the run has rolled back and written its report, then prints its status.
    Exit 0 when the run ended, 1 when it is not running or did not end within --wait.
    """
    from orchestrator.abort import AbortFailed, find_run, request_abort

    try:
        sent = request_abort(find_run(run, runs_dir), reason, wait_seconds)
    except AbortFailed as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    if not sent.ended:
        click.echo(f"abort sent to {sent.run_dir}; it has not ended within {wait_seconds:g}s", err=True)
        sys.exit(1)
    click.echo(f"{sent.run_dir}: {_ended_as_in(sent.run_dir)} after {sent.waited:.3f}s")


def _ended_as(report: Path) -> str:
    """The status an ended run's report.json gives (read within its bound), or why there is none; for a game
    day's gameday.json, the game day's."""
    from orchestrator.reporting.document import ReportFormatError, read_document

    if not report.exists():
        return "ended without a report"
    try:
        document = read_document(report)
        return str(document["status"] if report.name == "gameday.json" else document["run"]["status"])
    except (ReportFormatError, KeyError, TypeError) as e:
        return f"ended, but its report cannot be read ({e})"


# --- freeze -------------------------------------------------------------------------------------


def freeze_options(f: F) -> F:
    """Where a freeze holds: the runs folder always; with --cluster also the cluster's ConfigMap."""
    f = click.option(
        "--namespace",
        "-n",
        default="default",
        show_default=True,
        help="with --cluster: namespace of the freeze ConfigMap, the game days' lease namespace (the chart's "
        "release namespace)",
    )(f)
    f = click.option("--context", help="with --cluster: kubeconfig context (default: the current context)")(f)
    f = click.option("--kubeconfig", type=click.Path(dir_okay=False), envvar="KUBECONFIG", help="with --cluster")(f)
    f = click.option("--cluster", is_flag=True, help="also the cluster's: ConfigMap drillctl-freeze in --namespace")(f)
    return runs_dir_option("the runs folder whose runs and game days the freeze holds")(f)


@cli.command("freeze")
@click.option("--reason", required=True, help="why: kept in the freeze and in the report of every run it stops")
@click.option(
    "--wait", "wait_seconds", type=float, default=120.0, show_default=True, help="seconds to wait for the runs to end"
)
@freeze_options
@OUTPUT
def freeze_command(
    reason: str,
    wait_seconds: float,
    runs_dir: Path,
    cluster: bool,
    kubeconfig: str | None,
    context: str | None,
    namespace: str,
    output: str,
) -> None:
    """Stop every running drill, and let no drill or game day start until `drillctl unfreeze`.

    \b
    Writes <runs-dir>/freeze.json, then tells every live run under --runs-dir to stop (as
    `drillctl abort` does): each reverts every fault and ends aborted (exit 4 once something was
    injected), its report.json's run.stopped_by naming drillctl freeze and the reason. Waits for
    all of them, then prints each run's status. Runs and game days started meanwhile refuse
    (exit 3), and a run's watchdog reverts the faults of a run that does not stop by itself.
    With --cluster it also creates ConfigMap drillctl-freeze in --namespace: game days in the
    cluster (the chart's CronJobs) and runs of Kubernetes drills (their --freeze-namespace) refuse
    to start, and those running stop.
    Idempotent: an earlier freeze is kept with its reason, and live runs are stopped again.
      drillctl freeze --reason "incident 4711: hands off prod"
      drillctl freeze --reason "release freeze" --cluster -n drillctl -o json
    Exit 0 when every live run ended, 1 when one did not end within --wait or could not be told,
    3 when the cluster cannot be reached (the runs folder is frozen all the same).
    """
    from datetime import UTC, datetime

    from orchestrator.freeze import freeze, freeze_lines, frozen_json, new_freeze, stopped_lines

    now = datetime.now(UTC)
    frozen = freeze(runs_dir, reason, wait_seconds, now)
    document = frozen_json(runs_dir, frozen, _ended_as_in)
    lines = freeze_lines(str(runs_dir), frozen.freeze, frozen.already) + stopped_lines(frozen, _ended_as_in)
    unreachable = False
    if cluster:
        try:
            configmap = _cluster_freeze(kubeconfig, context, namespace)
            held, already = _on_cluster(configmap.write(new_freeze(reason, now)))
            document["cluster"] = {"configmap": configmap.where, "freeze": held.to_json(), "already_frozen": already}
            lines += freeze_lines(configmap.where, held, already)
        except _ClusterUnreachable as e:
            unreachable = True
            document["cluster"] = {"error": str(e)}
            click.echo(f"error: the cluster is not frozen: {e}", err=True)
    click.echo(json.dumps(document, indent=1) if output == "json" else "\n".join(lines))
    if unreachable:
        sys.exit(EXIT_PREFLIGHT)
    sys.exit(1 if frozen.failed or not all(s.ended for s in frozen.stopped) else 0)


@cli.command()
@freeze_options
@OUTPUT
def unfreeze(
    runs_dir: Path, cluster: bool, kubeconfig: str | None, context: str | None, namespace: str, output: str
) -> None:
    """Lift the freeze of `drillctl freeze`: runs and game days may start again.

    Says which freeze it cleared (since when, by whom, why), or that there was none: unfreezing
    twice is harmless. Runs the freeze stopped stay stopped. Exit 0, or 3 when the cluster cannot
    be reached with --cluster (the runs folder is unfrozen all the same).
    """
    from orchestrator.freeze import unfreeze as lift

    cleared = lift(runs_dir)
    document: dict[str, Any] = {"runs_dir": str(runs_dir), "cleared": None if cleared is None else cleared.to_json()}
    lines = [
        f"{runs_dir}: " + ("not frozen, nothing to clear" if cleared is None else f"cleared, was {cleared.describe()}")
    ]
    unreachable = False
    if cluster:
        try:
            configmap = _cluster_freeze(kubeconfig, context, namespace)
            gone = _on_cluster(configmap.clear())
            document["cluster"] = {"configmap": configmap.where, "cleared": None if gone is None else gone.to_json()}
            lines.append(
                f"{configmap.where}: "
                + ("not frozen, nothing to clear" if gone is None else f"cleared, was {gone.describe()}")
            )
        except _ClusterUnreachable as e:
            unreachable = True
            document["cluster"] = {"error": str(e)}
            click.echo(f"error: the cluster is not unfrozen: {e}", err=True)
    click.echo(json.dumps(document, indent=1) if output == "json" else "\n".join(lines))
    sys.exit(EXIT_PREFLIGHT if unreachable else 0)


class _ClusterUnreachable(Exception):
    """The cluster's freeze could not be read or written (no kubeconfig, no answer, refused)."""


def _cluster_freeze(kubeconfig: str | None, context: str | None, namespace: str) -> ClusterFreeze:
    from orchestrator.errors import PreflightError
    from orchestrator.kube.access import KubeAccess, connect
    from orchestrator.kube.freeze import ClusterFreeze

    try:
        return ClusterFreeze(connect(KubeAccess(kubeconfig, context)), namespace)
    except PreflightError as e:
        raise _ClusterUnreachable(str(e)) from e


def _on_cluster(call: Coroutine[Any, Any, L]) -> L:
    import asyncio

    from orchestrator.errors import BackendError

    try:
        return asyncio.run(call)
    except BackendError as e:
        raise _ClusterUnreachable(str(e)) from e


def _ended_as_in(run_dir: Path) -> str:
    """How a run or a game day (whose folder holds gameday.json) that `freeze` stopped ended."""
    gameday = run_dir / "gameday.json"
    return _ended_as(gameday if gameday.exists() else run_dir / "report.json")


def _summary(report: Report, view: LiveView) -> None:
    from orchestrator.reporting.terminal import run_summary

    click.echo("\n".join(run_summary(report, view.paint)))


# --- report and compare -------------------------------------------------------------------------

FORMATS = {"html": "report.html", "md": "report.md", "junit": "report.junit.xml", "json": "report.json"}


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--format", "fmt", type=click.Choice(list(FORMATS)), default="html", show_default=True, help="what to render"
)
@click.option(
    "--write", "write_to", type=click.Path(path_type=Path, dir_okay=False), help="write to this file, not stdout"
)
def report(run_dir: Path, fmt: str, write_to: Path | None) -> None:
    """Render a run's report again from its report.json alone (RUN_DIR or the file itself).

    Runbook sections were quoted into report.json when the run ended, so this works on a copied
    run directory, on another machine, and after the runbook changed. Exit 2 if report.json is
    missing or not a drillctl.report/v1 document.
    """
    (loaded,) = _read_reports(run_dir)
    from orchestrator.reporting.html import render_html
    from orchestrator.reporting.json_report import render_json
    from orchestrator.reporting.junit import render_junit
    from orchestrator.reporting.markdown import render_markdown

    renderers: dict[str, Callable[[Report], str]] = {
        "html": render_html,
        "md": render_markdown,
        "junit": render_junit,
        "json": render_json,
    }
    text = renderers[fmt](loaded)
    if write_to is None:
        click.echo(text, nl=False)
    else:
        write_to.write_text(text, encoding="utf-8", errors="replace")


def _read_reports(*run_dirs: Path) -> list[Report]:
    """Each run's Report; exit 2 with the reason when one cannot be read. Every report.json is read (within its
    bound) before the heavy modules are imported, so a file over the bound is refused as Python starts."""
    from orchestrator.reporting.document import ReportFormatError, read_document, report_path

    try:
        documents = [(read_document(report_path(d)), report_path(d).parent) for d in run_dirs]
        from orchestrator.reporting.json_report import from_json

        return [from_json(document, folder) for document, folder in documents]
    except ReportFormatError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_INVALID)


@cli.command()
@click.argument("runs", nargs=-1, type=click.Path(path_type=Path), metavar="[BASELINE_RUN] NEW_RUN")
@click.option("--tolerance", default="20%", show_default=True, help="how much worse a figure may get, relative")
@click.option("--floor", default="100ms", show_default=True, help="smallest regression of a window or outage")
@click.option("--latency-floor", default="10ms", show_default=True, help="smallest regression of a latency")
@click.option("--rate-floor", default="1%", show_default=True, help="smallest regression of an error rate")
@click.option(
    "--baseline",
    "baseline_spec",
    metavar="history:last=N",
    help="compare NEW_RUN with the medians of the last N passing runs of its drill in the history, not with a run",
)
@label_option("with --baseline: only runs with this label (repeatable)")
@HISTORY
@runs_dir_option("with --baseline: whose history.sqlite to read")
@OUTPUT
def compare(
    runs: tuple[Path, ...],
    tolerance: str,
    floor: str,
    latency_floor: str,
    rate_floor: str,
    baseline_spec: str | None,
    labels: dict[str, str],
    history: str | None,
    runs_dir: Path,
    output: str,
) -> None:
    """Compare two runs of one drill: per SLA, fault and probe, what changed and whether it regressed.

    A figure regresses when it got worse by more than the largest of --tolerance (relative to the
    baseline), its floor, and the resolution of the measurement. An SLA that passed and now fails,
    or a fault that no longer recovers, always regresses. Exit 1 on a regression, 0 otherwise,
    2 when a report cannot be read or the runs are of different drills.

    \b
    With --baseline history:last=N the baseline is the median of each SLA and fault figure over
    the last N passing runs of the drill (started before NEW_RUN, with every --label given), and
    the runs' spread (worst minus median) counts as its resolution: a run within the spread passes.
    Probe statistics are not in the history, so only SLAs and faults are compared then.
      drillctl compare runs/<before> runs/<after>
      drillctl compare --baseline history:last=10 runs/<after>
      drillctl compare --baseline history:last=10 --label cluster=staging runs/<after> -o json
    """
    from orchestrator.model.durations import parse_duration

    def share(text: str) -> float:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)

    try:
        figures = (share(tolerance), parse_duration(floor), parse_duration(latency_floor), share(rate_floor))
    except ValueError as e:
        raise click.UsageError(f"bad tolerance: {e}") from e
    from orchestrator.comparison import Tolerance

    limits = Tolerance(*figures)
    if baseline_spec is not None:
        if len(runs) != 1:
            raise click.UsageError("with --baseline, give one run: drillctl compare --baseline history:last=10 RUN")
        _compare_with_history(runs[0], baseline_spec, labels, history, runs_dir, limits, output)
    if len(runs) != 2:
        raise click.UsageError("give two runs (BASELINE_RUN NEW_RUN), or one with --baseline history:last=N")
    before, after = _read_reports(*runs)
    from orchestrator.comparison import compare as compare_runs
    from orchestrator.reporting.terminal import comparison_json, comparison_lines

    if before.drill.name != after.drill.name:
        click.echo(f"error: runs of different drills ({before.drill.name} and {after.drill.name})", err=True)
        sys.exit(EXIT_INVALID)
    result = compare_runs(before, after, limits)
    if output == "json":
        click.echo(json.dumps(comparison_json(result, before, after, limits), indent=1))
    else:
        click.echo("\n".join(comparison_lines(result, before, after)))
    sys.exit(1 if result.regressed else 0)


# --- gameday ------------------------------------------------------------------------------------


@cli.group()
def gameday() -> None:
    """Game days: a suite of drills run in order, one report for all of them.

    \b
    A GameDay file (kind: GameDay) names drills (paths and globs), their order, a cool-down,
    a stop policy, an allowed window, a cron schedule (for the Helm chart) and a webhook.
    Only one game day runs against a cluster at a time (a coordination.k8s.io Lease).
      drillctl gameday plan drills/gamedays/release-rehearsal.yaml
      drillctl gameday run  drills/gamedays/release-rehearsal.yaml
    """


@gameday.command("plan")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@OUTPUT
def gameday_plan(file: Path, output: str) -> None:
    """Check the game day and every drill in it, and print what a run would do. Touches nothing."""
    from datetime import UTC, datetime

    from orchestrator.gameday.plan import load_gameday, plan_document, plan_lines
    from orchestrator.logs import silence

    silence()
    document = plan_document(_valid_or_exit(load_gameday, file), datetime.now(UTC))
    click.echo(json.dumps(document, indent=1) if output == "json" else "\n".join(plan_lines(document)))


@gameday.command("run")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--force", is_flag=True, help="start even outside the game day's allowed window")
@click.option(
    "--wait", "wait_for", metavar="DURATION", help="wait up to this long (e.g. 10m) for another game day's lease"
)
@click.option("--lease-namespace", help="namespace of the Lease (default: the game day's lease.namespace)")
@click.option("--toxiproxy-url", help="Toxiproxy API for every drill instead of its toxiproxy.url ('auto' starts one)")
@runs_dir_option("where the game-day folder and each drill's run directory are created")
@kube_options
@click.option("--yes", is_flag=True, help="confirm drills in a protected Kubernetes context (e.g. one matching *prod*)")
@click.option("--quiet", "-q", is_flag=True, help="no live view on stderr")
@push_options
@label_option("recorded with every drill's run in the history (repeatable)")
@HISTORY
@OUTPUT
def gameday_run(
    file: Path,
    force: bool,
    wait_for: str | None,
    lease_namespace: str | None,
    toxiproxy_url: str | None,
    runs_dir: Path,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    yes: bool,
    quiet: bool,
    pushgateway: str | None,
    push_every: str,
    labels: dict[str, str],
    history: str | None,
    output: str,
) -> None:
    """Run every drill of a game day and write the game-day report.

    \b
    The report folder (<runs-dir>/gameday-<name>-<time>/) holds index.html and index.md (each
    drill's verdict, recovery figures and a link to its own report), junit.xml (one testsuite
    per drill) and gameday.json (also POSTed to the webhook). Exit code: the most severe
    drill's (1 an SLA failed, 3 a drill could not start, 4 a drill was aborted); 3 when the
    game day is refused (outside its window, lease held, frozen: see `drillctl freeze`) or stopped early.
    """
    from datetime import UTC, datetime

    from orchestrator.console import LiveView
    from orchestrator.freeze import read_freeze
    from orchestrator.gameday.plan import load_gameday, outside_window
    from orchestrator.gameday.report import summary_lines, to_json
    from orchestrator.gameday.run import GameDayOptions, run_gameday
    from orchestrator.kube.access import KubeAccess

    loaded = _valid_or_exit(load_gameday, file)
    refused = outside_window(loaded, datetime.now(UTC))
    if refused is not None and not force:
        click.echo(f"error: game day {loaded.spec.name} refused: {refused}; --force starts it anyway", err=True)
        sys.exit(EXIT_PREFLIGHT)
    if (frozen := read_freeze(runs_dir)) is not None:
        click.echo(f"error: game day {loaded.spec.name} refused: drills are {frozen.describe()}", err=True)
        sys.exit(EXIT_PREFLIGHT)
    view = LiveView(quiet=quiet or output == "json")
    kube = KubeAccess(kubeconfig, context, namespace)
    holder = _gameday_lease(loaded, kube, lease_namespace, wait_for) if loaded.lease_enabled else None
    try:
        cluster_freeze = None if holder is None else _unfrozen_cluster(loaded, holder)
        push = _push_target(pushgateway, push_every)
        options = GameDayOptions(
            runs_dir, toxiproxy_url, kube, confirmed=yes, forced=force, push=push, labels=labels, history=history
        )
        result = run_gameday(loaded, options, view, holder, cluster_freeze)
    finally:
        if holder is not None:
            holder.release()
    click.echo(
        json.dumps(to_json(result), indent=1) if output == "json" else "\n".join(summary_lines(result, view.paint))
    )
    sys.exit(result.exit_code)


def _unfrozen_cluster(loaded: LoadedGameDay, holder: LeaseHolder) -> ClusterFreeze:
    """The freeze beside the lease, to watch during the game day; exit 3 when it holds or cannot be read."""
    from orchestrator.kube.freeze import ClusterFreeze

    cluster_freeze = ClusterFreeze(holder.lease.connection, holder.lease.config.namespace)
    try:
        frozen = _on_cluster(cluster_freeze.read())
    except _ClusterUnreachable as e:
        click.echo(f"error: game day {loaded.spec.name}: cannot read the cluster's freeze: {e}", err=True)
        sys.exit(EXIT_PREFLIGHT)
    if frozen is not None:
        click.echo(
            f"error: game day {loaded.spec.name} refused: {cluster_freeze.where} is {frozen.describe()}", err=True
        )
        sys.exit(EXIT_PREFLIGHT)
    return cluster_freeze


def _waiting_for(holder: Holder) -> None:
    click.echo(
        f"waiting for the game day lease: {holder.identity} holds it, "
        f"until {holder.expires_at.isoformat(timespec='seconds')} unless renewed",
        err=True,
    )


def _gameday_lease(loaded: LoadedGameDay, kube: KubeAccess, namespace: str | None, wait_for: str | None) -> LeaseHolder:
    """The cluster lock, or exit 3 saying who holds it."""
    from orchestrator.errors import BackendError, PreflightError
    from orchestrator.gameday.lease import hold_lease
    from orchestrator.model.durations import parse_duration

    try:
        wait = None if wait_for is None else parse_duration(wait_for)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--wait") from e
    try:
        return hold_lease(loaded.spec.spec.lease, loaded.spec.name, kube, namespace, wait, _waiting_for)
    except (PreflightError, BackendError) as e:
        click.echo(f"error: game day {loaded.spec.name}: {e}", err=True)
        sys.exit(EXIT_PREFLIGHT)


# --- history ------------------------------------------------------------------------------------


def _compare_with_history(
    run_dir: Path,
    spec: str,
    labels: dict[str, str],
    history: str | None,
    runs_dir: Path,
    limits: Tolerance,
    output: str,
) -> None:
    """`compare --baseline history:last=N RUN`: the rolling baseline, judged by `comparison.compare`; exits."""
    from orchestrator.comparison import compare as compare_runs
    from orchestrator.history.arguments import parse_baseline
    from orchestrator.history.model import RunQuery
    from orchestrator.history.render import baseline_json, baseline_name
    from orchestrator.history.store import location_of, shown
    from orchestrator.history.trends import baseline
    from orchestrator.reporting.terminal import change_json, change_lines

    try:
        last = parse_baseline(spec)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--baseline") from e
    (after,) = _read_reports(run_dir)
    facts = after.facts
    location = location_of(history, runs_dir)
    query = RunQuery(
        drill=after.drill.name, before=facts.started_at, labels=labels, status="passed", exclude=facts.run_id, last=last
    )
    records = _read_history(location, lambda store: store.runs(query))
    if not records:
        wanted = "".join(f" {k}={v}" for k, v in labels.items())
        click.echo(
            f"error: no passing run of drill {after.drill.name}{wanted} before {facts.run_id} in {shown(location)}",
            err=True,
        )
        sys.exit(EXIT_INVALID)
    base = baseline(records)
    result = compare_runs(base, after, limits)
    if output == "json":
        document = change_json(result, after.drill.name, baseline_json(base, spec), facts.run_id, limits)
        click.echo(json.dumps(document, indent=1))
    else:
        click.echo("\n".join(change_lines(result, after.drill.name, baseline_name(base), facts.run_id)))
    sys.exit(1 if result.regressed else 0)


def _read_history(location: str, read: Callable[[HistoryStore], L]) -> L:
    """What `read` finds in an existing history; exit 2 when there is no usable history there, 3 when its
    server cannot be reached."""
    import sqlite3

    from orchestrator.history.store import HistoryError, open_store

    try:
        store = open_store(location, create=False)
        try:
            return read(store)
        finally:
            store.close()
    except (HistoryError, sqlite3.Error) as e:
        _history_failed(e)


def _history_failed(error: Exception) -> NoReturn:
    from orchestrator.history.store import HistoryUnreachable

    click.echo(f"error: {error}", err=True)
    sys.exit(EXIT_PREFLIGHT if isinstance(error, HistoryUnreachable) else EXIT_INVALID)


class _HistoryGroup(click.Group):
    """`drillctl history [DRILL]` is `drillctl history show [DRILL]`: a first word that names no subcommand
    (a drill, an option) belongs to `show`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["show", *args]
        return super().parse_args(ctx, args)


@cli.group(cls=_HistoryGroup)
def history() -> None:
    """Every finished run is recorded in a history: is recovery getting slower?

    \b
    A run records its verdict, each SLA's measured value, threshold, margin and resolution, and
    each fault's time to impact, time to recover and unavailability, with its --label pairs, in
    <runs-dir>/history.sqlite (SQLite, WAL: runs that finish together both land), or with
    --history postgresql://user:pass@host/db in a PostgreSQL database a team's runners share.
      drillctl run drills/x.yaml --label release=1.4     records itself
      drillctl history import runs/                      index runs made before (idempotent)
      drillctl history                                   every drill, one row per figure
      drillctl history quickstart --since 30d --label cluster=staging
      drillctl history quickstart -o json
      drillctl compare --baseline history:last=10 runs/<run>   against the last 10 passing runs
    """


@history.command("show")
@click.argument("drill", required=False)
@click.option(
    "--since", metavar="DATE|AGE", help="only runs started since then: 2026-11-30, 2026-11-30T12:00Z, 7d, 12h"
)
@label_option("only runs with this label (repeatable)")
@click.option("--last", type=click.IntRange(min=1), help="only the newest N runs that match")
@HISTORY
@runs_dir_option("whose history.sqlite to read")
@OUTPUT
def history_show(
    drill: str | None,
    since: str | None,
    labels: dict[str, str],
    last: int | None,
    history: str | None,
    runs_dir: Path,
    output: str,
) -> None:
    """Each figure of a drill (or of every drill) over its runs, oldest to newest; then game days.

    \b
    One row per figure: each SLA's measured value, each fault's time to recover and
    unavailability; columns: runs measured, last, median, min/max, and a sparkline of the
    last 30 runs (lowest ▁ to highest █, a gap where a run did not measure it).
    A game day (DRILL may name one) shows how often each of its drills passed and how it ended last.
      drillctl history quickstart --since 7d
      drillctl history --label release=1.4 -o json
    Exit 2 when there is no usable history, 3 when its PostgreSQL server cannot be reached.
    """
    from dataclasses import replace
    from datetime import UTC, datetime

    from orchestrator.history.arguments import parse_since
    from orchestrator.history.model import RunQuery
    from orchestrator.history.render import trend_lines, trends_json
    from orchestrator.history.store import location_of

    try:
        start = None if since is None else parse_since(since, datetime.now(UTC))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since") from e
    query = RunQuery(drill=drill, since=start, labels=labels, last=last)
    drills, gamedays = _read_history(
        location_of(history, runs_dir),
        lambda store: (store.series(query, output == "json"), store.runs(replace(query, kind="gameday"))),
    )
    if output == "json":
        click.echo(json.dumps(trends_json(query, drills, gamedays), indent=1))
    else:
        click.echo("\n".join(trend_lines(drills, gamedays)))


@history.command("import")
@click.argument("folder", metavar="RUNS_DIR", type=click.Path(path_type=Path, file_okay=False, exists=True))
@HISTORY
@OUTPUT
def history_import(folder: Path, history: str | None, output: str) -> None:
    """Record the runs and game days under RUNS_DIR in the history, in one transaction.

    \b
    Every report.json below RUNS_DIR is a drill's run; every gameday.json a game day, recorded as an
    entry of its own with each drill's status and run. What the history holds already is left alone,
    so importing twice records nothing new. A file that cannot be read or is not drillctl's (or a
    game day that did not finish) is skipped with one line on stderr naming the file and why, and the
    import goes on. The history is RUNS_DIR/history.sqlite unless --history says otherwise. Exit 0
    (skipped files included), 2 when the history is unusable, 3 when its PostgreSQL server cannot be
    reached.
      drillctl history import runs/
    """
    import sqlite3

    from orchestrator.history.recording import import_runs
    from orchestrator.history.store import HistoryError, location_of, open_store, shown

    location = location_of(history, folder)
    try:
        store = open_store(location)
        try:
            result = import_runs(folder, store)
        finally:
            store.close()
    except (HistoryError, sqlite3.Error) as e:
        _history_failed(e)
    for path, why in result.skipped:
        click.echo(f"skipped {path}: {why}", err=True)
    if output == "json":
        skipped = [{"file": str(path), "reason": why} for path, why in result.skipped]
        document = {
            "history": shown(location),
            "recorded": result.recorded,
            "known": result.known,
            "gamedays": sorted(result.gamedays),
            "skipped": skipped,
        }
        click.echo(json.dumps(document, indent=1))
    else:
        days = sum(r in result.gamedays for r in result.recorded)
        click.echo(
            f"{shown(location)}: recorded {len(result.recorded) - days} runs and {days} game days,"
            f" {len(result.known)} already there, skipped {len(result.skipped)} files"
        )


# --- serve --------------------------------------------------------------------------------------


@cli.command()
@runs_dir_option("whose runs, game days and history to serve")
@HISTORY
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind; not loopback needs --token")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="0 picks a free port")
@click.option(
    "--token",
    envvar="DRILLCTL_SERVE_TOKEN",
    help="required of every request (open URL/?token=... once; or Authorization: Bearer); also $DRILLCTL_SERVE_TOKEN",
)
@OUTPUT
def serve(runs_dir: Path, history: str | None, host: str, port: int, token: str | None, output: str) -> None:
    """Serve the runs folder as pages, and running drills live, until Ctrl-C.

    \b
    The index lists drills running now, game days and the latest runs with their verdicts; a
    drill's page charts each SLA and recovery figure across its runs (from the history); a
    finished run shows its report.html; a running one its live view: phase, active faults, each
    probe's latest samples and availability, and SLAs as they are decided, updated as the run
    writes (server-sent events), with an abort button (a reason and a confirmation; the same as
    `drillctl abort`). The server only reads what runs write: it cannot slow or stop a run.
    While it serves, <runs-dir>/serve.json holds its address, which game-day indexes link to.
      drillctl serve                                  http://127.0.0.1:8080/
      drillctl serve --host 0.0.0.0 --token "$(openssl rand -hex 16)"
    Exit 2 when --host is not loopback and there is no --token.
    """
    import asyncio

    from orchestrator.history.store import location_of
    from orchestrator.serve.app import ServeConfig, is_loopback
    from orchestrator.serve.app import serve as serve_forever

    if not is_loopback(host) and not token:
        raise click.UsageError(f"--host {host} is not loopback: give --token (or $DRILLCTL_SERVE_TOKEN)")
    config = ServeConfig(runs_dir, location_of(history, runs_dir), host, port, token or None)

    def ready(url: str) -> None:
        if output == "json":
            click.echo(json.dumps({"url": url, "runs_dir": str(runs_dir), "history": config.history}))
        else:
            click.echo(f"serving {runs_dir} at {url} (Ctrl-C to stop)")
        sys.stdout.flush()

    try:
        asyncio.run(serve_forever(config, ready))
    except OSError as e:
        click.echo(f"error: cannot listen on {host}:{port}: {e.strerror or e}", err=True)
        sys.exit(EXIT_INVALID)
