"""The pages of `drillctl serve`, pure: data in, HTML out, every text escaped where it is put.

They share report.html's shell (`reporting/html.py`'s `page`, its style and CSP) and add no asset: styles and
charts inline. Only the live page has a script, inline, allowed by a nonce of its own page load, and it writes
what it receives with `textContent`, so a hostile name in an event stays text.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

from orchestrator.history.model import DrillSeries, RunRecord
from orchestrator.reporting.formats import figure
from orchestrator.reporting.html import CSP, STYLE, page, table
from orchestrator.serve.charts import TREND_STYLE, trend_chart

LAST_RUNS = 50
"""Runs listed under a drill's trends, newest first."""

SERVE_STYLE = (
    STYLE
    + TREND_STYLE
    + """
nav { margin-bottom: 1rem; } nav a { margin-right: 1rem; }
.state { display: inline-block; padding: .05rem .5rem; border-radius: 1rem; color: #fff; background: var(--warn); }
.state.running { background: var(--ok); } .state.finished { background: var(--pass); }
.state.ended, .state.failed, .state.stopping { background: var(--fail); }
.verdict-PASS, .sla-passed { color: var(--pass); font-weight: 600; }
.verdict-FAIL, .verdict-ABORTED, .verdict-ERROR, .sla-failed { color: var(--fail); font-weight: 600; }
.sla-pending { color: var(--muted); }
.sq { display: inline-block; width: .7em; height: .9em; margin-right: 1px; background: var(--pass); }
.sq.failed { background: var(--fail); }
ul.active { margin: 0; padding-left: 1.2rem; } ul.active li { color: var(--bar); font-weight: 600; }
details.abort { margin-top: 1.5rem; border: 1px solid var(--fail); padding: .5rem .8rem; border-radius: .3rem; }
details.abort summary { color: var(--fail); font-weight: 600; cursor: pointer; }
details.abort label { display: block; margin: .5rem 0; }
details.abort input[name=reason] { width: 60%; }
details.abort button { background: var(--fail); color: #fff; border: 0; padding: .3rem .9rem; border-radius: .3rem; }
"""
)


def _e(text: object) -> str:
    return escape(str(text))


def _q(text: str) -> str:
    """A path segment of our own URLs: every character that could end it or the attribute quoted (a folder name
    that is no UTF-8 as the bytes it is)."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "replace")
    return quote(raw, safe="")


def run_href(run_id: str) -> str:
    return f"/runs/{_q(run_id)}/live"


def report_href(run_id: str) -> str:
    return f"/files/{_q(run_id)}/report.html"


def drill_href(drill: str) -> str:
    return f"/drills/{_q(drill)}"


def _nav() -> str:
    return '<nav><a href="/">runs</a></nav>'


@dataclass(frozen=True)
class RunningRun:
    run_id: str
    drill: str
    phase: str
    started_at: str


@dataclass(frozen=True)
class GameDayRow:
    folder: str
    name: str
    status: str
    started_at: str


@dataclass(frozen=True)
class DrillRow:
    name: str
    runs: int
    last_verdict: str
    last_started: str


def _code(text: str) -> str:
    return f"<code>{_e(text)}</code>"


def _drill_link(drill: str) -> str:
    """To the drill's trends."""
    return f'<a href="{drill_href(drill)}">{_code(drill)}</a>'


def _verdict(verdict: str) -> str:
    """Coloured by the style: PASS green, anything else red."""
    return f'<span class="verdict-{_e(verdict)}">{_e(verdict)}</span>'


def _labels(labels: Any) -> str:
    return " ".join(f"<code>{_e(k)}={_e(v)}</code>" for k, v in sorted(labels.items())) or "—"


def index_page(
    running: Sequence[RunningRun],
    gamedays: Sequence[GameDayRow],
    drills: Sequence[DrillRow],
    runs: Sequence[RunRecord],
    with_report: Collection[str],
    note: str | None,
) -> str:
    """Runs under way, game days, drills with their trends, and the latest finished runs, newest first."""
    body = [_nav(), "<h1>drillctl</h1>"]
    if note:
        body.append(f'<p class="reason">{_e(note)}</p>')
    running_rows = [
        [f'<a href="{run_href(r.run_id)}">{_e(r.run_id)}</a>', _code(r.drill), _e(r.phase), _e(r.started_at)]
        for r in running
    ]
    body += _section("Running now", ["run", "drill", "phase", "started"], running_rows, "No drill is running.")
    day_rows = [
        [
            f'<a href="/files/{_q(g.folder)}/index.html">{_e(g.folder)}</a>',
            _code(g.name),
            _e(g.status.upper()),
            _e(g.started_at),
        ]
        for g in gamedays
    ]
    body += _section("Game days", ["game day", "name", "verdict", "started"], day_rows, "No game day here.")
    drill_rows = [[_drill_link(d.name), str(d.runs), _verdict(d.last_verdict), _e(d.last_started)] for d in drills]
    head = ["drill (trends)", "runs", "last verdict", "last run"]
    body += _section("Drills", head, drill_rows, "No run in the history yet.", numeric={1})
    body.append("<h2>Latest runs</h2>")
    body.append(_runs_table(runs, with_report) if runs else '<p class="muted">None.</p>')
    return page("drillctl runs", SERVE_STYLE, body)


def _section(
    title: str, head: Sequence[str], rows: Sequence[Sequence[str]], empty: str, numeric: Collection[int] = ()
) -> list[str]:
    return [f"<h2>{_e(title)}</h2>", table(head, rows, numeric) if rows else f'<p class="muted">{_e(empty)}</p>']


def _runs_table(runs: Sequence[RunRecord], with_report: Collection[str]) -> str:
    rows = []
    for r in runs:
        name = _e(r.run_id)
        link = f'<a href="{report_href(r.run_id)}">{name}</a>' if r.run_id in with_report else name
        drill = _drill_link(r.drill)
        when = _e(r.started_at.isoformat(timespec="seconds"))
        rows.append([link, drill, _verdict(r.verdict), when, _labels(r.labels)])
    return table(["run", "drill", "verdict", "started", "labels"], rows)


def trend_page(series: DrillSeries, with_report: Collection[str]) -> str:
    """A chart per figure across every run of the drill, then its last runs."""
    n = len(series.run_ids)
    passed = series.verdicts.count("PASS")
    body = [
        _nav(),
        f"<h1>Drill <code>{_e(series.drill)}</code>: trends</h1>",
        f'<p class="muted">{n} runs, {passed} passed · oldest left, newest right · a mark under the axis: '
        "runs that did not pass</p>",
    ]
    for s in series.figures:
        last = figure(s.last, s.unit)
        median = figure(s.median, s.unit)
        body.append(
            f"<figure>{trend_chart(s, series.verdicts, series.started_at)}<figcaption><b>{_e(s.subject)}</b> "
            f"{_e(s.metric)} · last {_e(last)} · median {_e(median)} · range {_e(figure(s.low, s.unit))} to "
            f"{_e(figure(s.high, s.unit))}</figcaption></figure>"
        )
    body.append("<h2>Last runs</h2>")
    rows = []
    for i in range(n - 1, max(n - LAST_RUNS, 0) - 1, -1):
        run_id = series.run_ids[i]
        name = _e(run_id)
        link = f'<a href="{report_href(run_id)}">{name}</a>' if run_id in with_report else name
        values = [_e(figure(s.values[i], s.unit)) for s in series.figures]
        when = _e(series.started_at[i].isoformat(timespec="seconds"))
        rows.append([link, _verdict(series.verdicts[i]), when, *values])
    head = ["run", "verdict", "started"] + [f"{_e(s.subject)} {_e(s.metric)}" for s in series.figures]
    body.append(table(head, rows, numeric=set(range(3, 3 + len(series.figures)))))
    return page(f"Drill {series.drill}: trends", SERVE_STYLE, body)


def message_page(title: str, text: str) -> str:
    return page(title, SERVE_STYLE, [_nav(), f"<h1>{_e(title)}</h1>", f"<p>{_e(text)}</p>"])


def live_csp(nonce: str) -> str:
    """The report's CSP, plus this page's one script (by nonce), its event stream and its abort form."""
    return CSP.replace("form-action 'none'", "form-action 'self'") + (
        f"; script-src 'nonce-{nonce}'; connect-src 'self'; frame-ancestors 'none'"
    )


# --- the live page ----------------------------------------------------------------------------------------


def _faults_html(faults: Sequence[dict[str, Any]]) -> str:
    rows = [
        [
            f"<code>{_e(f['name'])}</code>",
            _e(f["type"]),
            _e(f["state"]),
            _e(f["what"] or "—"),
            _e(f["injected_at"]),
            _e(f["reverted_at"]),
        ]
        for f in faults
    ]
    return table(["fault", "type", "state", "what", "injected", "reverted"], rows)


def _active_html(faults: Sequence[dict[str, Any]]) -> str:
    active = [f for f in faults if f["active"]]
    if not active:
        return '<p class="muted">none</p>'
    items = "".join(f'<li data-fault="{_e(f["name"])}">{_e(f["name"])}: {_e(f["what"] or "")}</li>' for f in active)
    return f'<ul class="active">{items}</ul>'


def _squares(latest: Sequence[dict[str, Any]]) -> str:
    return "".join(
        f'<span class="sq{"" if s["ok"] else " failed"}" title="{_e(_sample_text(s))}"></span>' for s in latest
    )


def _sample_text(s: dict[str, Any]) -> str:
    latency = "no latency" if s["latency"] is None else f"{s['latency'] * 1000:.1f}ms"
    error = f" · {s['error']}" if s["error"] else ""
    return f"{s['at']:.3f}s {'ok' if s['ok'] else 'failed'} {latency}{error}"


def _probes_html(probes: Sequence[dict[str, Any]]) -> str:
    rows = []
    for p in probes:
        last = p["latest"][-1]
        rows.append(
            [
                f"<code>{_e(p['name'])}</code>",
                _e(_sample_text(last)),
                _squares(p["latest"]),
                str(p["samples"]),
                _e(p["availability"]),
                _e(p["recent"]),
            ]
        )
    return table(["probe", "latest sample", "latest samples", "samples", "availability", "recent"], rows, {3, 4, 5})


def _slas_html(slas: Sequence[dict[str, Any]]) -> str:
    rows = [
        [
            f"<code>{_e(s['name'])}</code>",
            _e(s["type"]),
            f'<span class="sla-{_e(s["state"])}">{_e(s["state"].upper())}</span>',
            _e(s["measured"]),
            _e(s["threshold"]),
            f'<span class="detail">{_e(s["detail"])}</span>',
        ]
        for s in slas
    ]
    return table(["SLA", "type", "status", "measured", "limit", "detail"], rows)


def live_page(run_id: str, document: dict[str, Any], csrf: str, nonce: str) -> str:
    """The live view, drawn from the watcher's latest document, then kept current by the script's event stream."""
    drill, state = document.get("drill", ""), document.get("state", "ended")
    stop = document.get("stop")
    report = document.get("report")
    link = f'<a href="{_e(report)}">report</a>' if report else "—"
    body = [
        _nav(),
        f'<h1>Drill <code>{_e(drill)}</code> live <span id="state" class="state {_e(state)}">{_e(state)}</span></h1>',
        f'<p class="muted">run <code>{_e(run_id)}</code></p>',
        "<dl>",
        f'<dt>phase</dt><dd id="phase">{_e(document.get("phase", ""))}</dd>',
        f'<dt>run time</dt><dd id="now">{_e(document.get("now", ""))}</dd>',
        f'<dt>stopping</dt><dd id="stop">{_e(stop or "—")}</dd>',
        f'<dt>verdict</dt><dd id="verdict">{_e(document.get("verdict") or "—")}</dd>',
        f'<dt>report</dt><dd id="report">{link}</dd>',
        "</dl>",
        f'<p id="note" class="muted">{_e(document.get("sla_note") or document.get("error") or "")}</p>',
        "<h2>Active faults</h2>",
        f'<div id="active">{_active_html(document.get("faults", []))}</div>',
        "<h2>Probes</h2>",
        f'<div id="probes">{_probes_html(document.get("probes", []))}</div>',
        "<h2>SLAs</h2>",
        f'<div id="slas">{_slas_html(document.get("slas", []))}</div>',
        "<h2>Faults</h2>",
        f'<div id="faults">{_faults_html(document.get("faults", []))}</div>',
    ]
    if state in ("running", "stopping"):
        body.append(
            f'<details class="abort" id="abort"><summary>Abort this drill…</summary>'
            f'<form method="post" action="/runs/{_q(run_id)}/abort">'
            f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
            '<label>Reason (recorded in the report) <input name="reason" required maxlength="1000"></label>'
            '<label><input type="checkbox" name="confirm" value="yes" required> Yes: revert every fault now and '
            "end the drill as aborted</label>"
            '<button type="submit">Abort the drill</button></form></details>'
        )
    body.append(f'<script nonce="{_e(nonce)}">{_SCRIPT.replace("EVENTS", f"/runs/{_q(run_id)}/events")}</script>')
    return page(f"Drill {drill} live ({run_id})", SERVE_STYLE, body, live_csp(nonce))


_SCRIPT = """
(() => {
  const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls; return e; };
  const code = (text) => { const td = el('td'); td.appendChild(el('code', text)); return td; };
  const tableOf = (head, rows, numeric) => {
    const t = el('table'), h = el('thead'), hr = el('tr');
    head.forEach((name, i) => hr.appendChild(el('th', name, numeric.includes(i) ? 'num' : '')));
    h.appendChild(hr); t.appendChild(h);
    const b = el('tbody'); rows.forEach((r) => b.appendChild(r)); t.appendChild(b); return t;
  };
  const cell = (text, cls) => el('td', text, cls);
  const sampleText = (s) => `${s.at.toFixed(3)}s ${s.ok ? 'ok' : 'failed'} ` +
    (s.latency === null ? 'no latency' : `${(s.latency * 1000).toFixed(1)}ms`) + (s.error ? ` · ${s.error}` : '');
  const put = (id, node) => document.getElementById(id).replaceChildren(node);
  const draw = (d) => {
    const state = document.getElementById('state');
    state.textContent = d.state; state.className = `state ${d.state}`;
    document.getElementById('phase').textContent = d.phase;
    document.getElementById('now').textContent = d.now;
    document.getElementById('stop').textContent = d.stop || '—';
    document.getElementById('verdict').textContent = d.verdict || '—';
    document.getElementById('note').textContent = d.sla_note || d.error || '';
    if (d.report) { const a = el('a', 'report'); a.href = d.report; put('report', a); }
    const active = d.faults.filter((f) => f.active);
    if (active.length) {
      const ul = el('ul', undefined, 'active');
      active.forEach((f) => { const li = el('li', `${f.name}: ${f.what || ''}`); li.dataset.fault = f.name;
        ul.appendChild(li); });
      put('active', ul);
    } else { put('active', el('p', 'none', 'muted')); }
    put('probes', tableOf(['probe', 'latest sample', 'latest samples', 'samples', 'availability', 'recent'],
      d.probes.map((p) => {
        const tr = el('tr'), last = p.latest[p.latest.length - 1];
        tr.dataset.probe = p.name; tr.dataset.latestAt = String(last.at);
        tr.dataset.landed = String(last.at + (last.lag || 0) + (last.latency || 0));
        tr.appendChild(code(p.name)); tr.appendChild(cell(sampleText(last)));
        const squares = el('td');
        p.latest.forEach((s) => { const q = el('span', undefined, s.ok ? 'sq' : 'sq failed'); q.title = sampleText(s);
          squares.appendChild(q); });
        tr.appendChild(squares);
        [String(p.samples), p.availability, p.recent].forEach((t) => tr.appendChild(cell(t, 'num')));
        return tr;
      }), [3, 4, 5]));
    put('slas', tableOf(['SLA', 'type', 'status', 'measured', 'limit', 'detail'], d.slas.map((s) => {
      const tr = el('tr'); tr.dataset.sla = s.name; tr.dataset.state = s.state;
      tr.appendChild(code(s.name)); tr.appendChild(cell(s.type));
      const st = el('td'); st.appendChild(el('span', s.state.toUpperCase(), `sla-${s.state}`)); tr.appendChild(st);
      tr.appendChild(cell(s.measured)); tr.appendChild(cell(s.threshold));
      const detail = el('td'); detail.appendChild(el('span', s.detail, 'detail')); tr.appendChild(detail);
      return tr;
    }), []));
    put('faults', tableOf(['fault', 'type', 'state', 'what', 'injected', 'reverted'], d.faults.map((f) => {
      const tr = el('tr'); tr.dataset.fault = f.name; tr.appendChild(code(f.name));
      [f.type, f.state, f.what || '—', f.injected_at, f.reverted_at].forEach((t) => tr.appendChild(cell(t)));
      return tr;
    }), []));
    if (d.state !== 'running' && d.state !== 'stopping') {
      const abort = document.getElementById('abort'); if (abort) abort.remove();
    }
  };
  const events = new EventSource('EVENTS');
  window.drillctlEvents = 0;
  const take = (kind) => (m) => { window.drillctlEvents += 1; draw(JSON.parse(m.data));
    if (kind !== 'state') events.close(); };
  events.addEventListener('state', take('state'));
  events.addEventListener('finished', take('finished'));
  events.addEventListener('failed', (m) => { document.getElementById('note').textContent = JSON.parse(m.data).error;
    events.close(); });
})();
"""
