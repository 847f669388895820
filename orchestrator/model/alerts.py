"""Alerts as a drill sees them: selectors, the state changes a watcher saw, the webhooks a receiver got.

Data only, on the drill's monotonic clock (seconds since t0), so analysis judges alert SLAs from
these marks and the measured impact and recovery alone. Selector matching is pure and lives here,
beside the data it matches, as `parse_label_selector` does for Kubernetes labels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

AlertState = Literal["inactive", "pending", "firing"]
MatchOp = Literal["=", "!=", "=~", "!~"]

ALERT_NAME_PATTERN = r"^[A-Za-z_:][A-Za-z0-9_:.-]*$"
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')


def parse_matcher(text: str) -> tuple[str, MatchOp, str]:
    """Alertmanager's matcher syntax, `label="value"`, `=~`, `!=`, `!~`; ValueError says what is expected.

    A regular expression matches the whole value, as in Prometheus and Alertmanager.
    """
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(f'not a label matcher: {text!r} (expected label="value", label=~"re", != or !~)')
    label, op, raw = found[1], found[2], found[3]
    value = re.sub(r"\\(.)", r"\1", raw)
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"matcher {text!r}: not a valid regular expression: {e}") from e
    kind: MatchOp = "=~" if op == "=~" else "!~" if op == "!~" else "!=" if op == "!=" else "="
    return label, kind, value


def matches(selector: AlertSelector, labels: Mapping[str, str]) -> bool:
    """Whether an alert with these labels is the one `selector` names (a missing label reads as "")."""
    if labels.get("alertname") != selector.alert:
        return False
    for label, op, value in selector.matchers:
        have = labels.get(label, "")
        if op == "=":
            ok = have == value
        elif op == "!=":
            ok = have != value
        else:
            ok = re.fullmatch(value, have) is not None
            ok = ok if op == "=~" else not ok
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class AlertSelector:
    """An alert by name and label matchers: what an SLA, a stop condition or the preflight watches."""

    alert: str
    matchers: tuple[tuple[str, MatchOp, str], ...] = ()

    @property
    def key(self) -> str:
        """How reports name it: `Name{label="value",...}` in Alertmanager's syntax, matchers in the spec's order."""
        if not self.matchers:
            return self.alert
        inner = ",".join(f'{label}{op}"{_quoted(value)}"' for label, op, value in self.matchers)
        return f"{self.alert}{{{inner}}}"

    @classmethod
    def of(cls, alert: str, matchers: Sequence[str]) -> AlertSelector:
        return cls(alert, tuple(parse_matcher(m) for m in matchers))


def receiver_url(host: str, port: int) -> str:
    """The drill's webhook receiver as Alertmanager's webhook_configs name it (an IPv6 host in brackets)."""
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True)
class AlertChange:
    """The combined state of every alert a selector matches, as the watcher first saw it change.

    The change happened after `since` (when the last poll that still saw the old state was sent) and
    by `at` (when the poll that saw the new one was answered): `at - since` is its resolution. `since`
    is None for the first poll, which saw the state the drill started in.
    """

    alert: str
    """The selector's key."""
    state: AlertState
    at: float
    since: float | None
    labels: Mapping[str, str]
    """One matching alert's labels (the first firing one, else the first pending one); empty when inactive."""
    annotations: Mapping[str, str]

    @property
    def resolution(self) -> float | None:
        return None if self.since is None else self.at - self.since


@dataclass(frozen=True)
class Delivery:
    """One webhook Alertmanager delivered to the drill's receiver, dated when it arrived."""

    at: float
    status: str
    """The notification's status: firing or resolved."""
    receiver: str
    alerts: tuple[DeliveredAlert, ...]


@dataclass(frozen=True)
class DeliveredAlert:
    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class AlertRule:
    """An alerting rule as Prometheus reported it in preflight: how long it holds and how often it is evaluated."""

    name: str
    group: str
    hold: float
    """Its `for:`, seconds."""
    interval: float
    """Its group's evaluation interval, seconds."""
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class Unanswered:
    """Polls of Prometheus's alerts that failed in a row: no state was seen between `after` (when the last
    answered poll before them was sent; the first failed one's send when none was) and `until` (when the next
    answered poll was sent; None: none was, to the end of the watch)."""

    after: float
    first: float
    """When the first failed poll was sent."""
    last: float
    """When the last one failed."""
    failures: int
    error: str
    """The first one's error."""
    until: float | None = None

    def describe(self) -> str:
        """As the reports say it: when, how many, why, and whether Prometheus answered again."""
        end = "and never again" if self.until is None else f"(answered again at {self.until:.3f}s)"
        return (
            f"{self.failures} poll{'s' if self.failures > 1 else ''} failed from {self.first:.3f}s to "
            f"{self.last:.3f}s {end}: {self.error}"
        )


@dataclass(frozen=True)
class AlertObservations:
    """Everything the drill learnt about alerts: what it watched, how often, and what it saw."""

    prometheus: str
    poll_interval: float
    polls: int
    failed_polls: int
    widest_gap: float
    """Largest spacing between the sends of consecutive answered polls: no state change can hide longer."""
    changes: tuple[AlertChange, ...]
    deliveries: tuple[Delivery, ...]
    rules: tuple[AlertRule, ...]
    receiver: str | None = None
    """The webhook URL Alertmanager was meant to post to, if the drill ran a receiver."""
    first_poll: float | None = None
    last_poll: float | None = None
    warnings: tuple[str, ...] = ()
    """What preflight and the receiver found odd but not fatal (an alert no rule defines, a malformed webhook)."""
    unanswered: tuple[Unanswered, ...] = ()
    """The stretches Prometheus did not answer, in order: alert figures that fall in one are not measured."""

    def rule(self, alert: str) -> AlertRule | None:
        return next((r for r in self.rules if r.name == alert), None)


DetectionStepName = Literal["impact", "pending", "firing", "notified", "recovered", "resolved"]


@dataclass(frozen=True)
class DetectionStep:
    """One moment of a detection timeline; `at` None when it was not observed."""

    name: DetectionStepName
    at: float | None
    resolution: float | None = None


@dataclass(frozen=True)
class DetectionTimeline:
    """How one fault was detected by one alert: impact -> pending -> firing -> notified -> recovered -> resolved."""

    fault: str
    alert: str
    steps: tuple[DetectionStep, ...]
    runbook_url: str | None = None
    """The `runbook_url` annotation of the alert that fired."""
    runbook_problem: str | None = None
    """Why that link does not land on the drill's runbook for the fault (None: it does, or nothing fired)."""
    fault_runbook: str | None = None

    def step(self, name: DetectionStepName) -> DetectionStep | None:
        return next((s for s in self.steps if s.name == name), None)
