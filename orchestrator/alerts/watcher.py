"""Polls Prometheus's alerts for the whole drill and records each selector's state changes as marks.

Polls are scheduled every `interval` from the start (a slow answer delays only the poll after it;
missed ticks are skipped, never bunched). Each answered poll is dated twice: when it was sent and
when it was answered. A state first seen in one poll changed after the previous answered poll was
sent and by the time this one was answered, which is what `AlertChange.since` and `at` hold.
Polls that fail in a row are kept as one `Unanswered` stretch (when, how many, the first error):
what Prometheus did meanwhile is not known, and analysis says so rather than judge it unseen.
Times are on the loop's monotonic clock as `clock` gives them; the session turns them into
seconds since t0.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

import structlog

from orchestrator.alerts.api import ActiveAlert
from orchestrator.errors import BackendError
from orchestrator.limits import ALERT_CHANGES, ALERT_OUTAGES
from orchestrator.model.alerts import AlertChange, AlertSelector, AlertState, Unanswered, matches

Listener = Callable[[Sequence[AlertChange]], None]


class AlertSource(Protocol):
    async def alerts(self) -> list[ActiveAlert]: ...


def combined(selector: AlertSelector, alerts: Sequence[ActiveAlert]) -> tuple[AlertState, ActiveAlert | None]:
    """Firing if any matching alert fires, else pending if any is pending; with the alert that says so."""
    matching = [a for a in alerts if matches(selector, a.labels)]
    for state in ("firing", "pending"):
        found = next((a for a in matching if a.state == state), None)
        if found is not None:
            return found.state, found
    return "inactive", None


class AlertWatcher:
    def __init__(
        self, source: AlertSource, selectors: Sequence[AlertSelector], interval: float, clock: Callable[[], float]
    ) -> None:
        self.source = source
        self.selectors = {s.key: s for s in selectors}
        self.interval = interval
        self.clock = clock
        self.changes: list[AlertChange] = []
        self.current: dict[str, AlertChange] = {}
        self.polls = 0
        self.failed = 0
        self.widest_gap = 0.0
        self.first_sent: float | None = None
        self.last_sent: float | None = None
        self.listeners: list[Listener] = []
        self.dropped = 0
        """Changes not kept once ALERT_CHANGES were."""
        self.first_error: str | None = None
        self.unanswered: list[Unanswered] = []
        """Stretches of failed polls that ended with an answer; `outage` is the one going on, if any."""
        self.outage: Unanswered | None = None
        self.log = structlog.get_logger()

    async def run(self) -> None:
        start, tick = self.clock(), 0
        while True:
            await self.poll()
            tick = max(tick + 1, math.ceil((self.clock() - start) / self.interval))
            await asyncio.sleep(max(0.0, start + tick * self.interval - self.clock()))

    async def poll(self) -> None:
        sent = self.clock()
        try:
            alerts = await self.source.alerts()
        except BackendError as e:
            self.failed += 1
            self.first_error = self.first_error or str(e)
            self._unanswered(sent, self.clock(), str(e))
            self.log.warning("alert_poll_failed", error=str(e))
            return
        self.observe(alerts, sent, self.clock())

    def stretches(self) -> list[Unanswered]:
        """Every stretch without an answer so far, the one going on last (its `until` None)."""
        return [*self.unanswered, *([] if self.outage is None else [self.outage])]

    def _unanswered(self, sent: float, failed: float, error: str) -> None:
        outage = self.outage
        if outage is None:
            after = sent if self.last_sent is None else self.last_sent
            self.outage = Unanswered(after, sent, failed, 1, error)
        else:
            self.outage = replace(outage, last=failed, failures=outage.failures + 1)

    def _answered_again(self, sent: float) -> None:
        if self.outage is None:
            return
        ended = replace(self.outage, until=sent)
        self.outage = None
        if len(self.unanswered) < ALERT_OUTAGES.value:
            self.unanswered.append(ended)
            return
        kept = self.unanswered[-1]
        self.unanswered[-1] = replace(kept, last=ended.last, failures=kept.failures + ended.failures, until=sent)

    def observe(self, alerts: Sequence[ActiveAlert], sent: float, answered: float) -> None:
        """One answered poll: record each selector whose combined state differs from the last one seen."""
        self._answered_again(sent)
        since = self.last_sent
        if since is not None:
            self.widest_gap = max(self.widest_gap, sent - since)
        else:
            self.first_sent = sent
        self.polls += 1
        self.last_sent = sent
        for key, selector in self.selectors.items():
            state, alert = combined(selector, alerts)
            previous = self.current.get(key)
            if previous is not None and previous.state == state:
                continue
            change = AlertChange(
                alert=key,
                state=state,
                at=answered,
                since=since,
                labels={} if alert is None else dict(alert.labels),
                annotations={} if alert is None else dict(alert.annotations),
            )
            self.current[key] = change
            self.log.info("alert_state", alert=key, state=state, at=answered, since=since)
            if len(self.changes) < ALERT_CHANGES.value:
                self.changes.append(change)
            else:
                self.dropped += 1
        for listener in self.listeners:
            listener(list(self.current.values()))
