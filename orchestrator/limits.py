"""Every bound on what drillctl reads, in one place.

A chaos tool runs in CI and in clusters from files and ConfigMaps that many people can edit, and
it talks to backends it does not control: no input may cost unbounded time or memory. Each bound
is a named `Limit` here, checked where the input is read; hitting one raises `LimitExceeded`,
whose message names the bound, where it was hit, and the variable that raises it when a real
drill needs more.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from orchestrator.errors import BackendError, DrillError


@dataclass(frozen=True)
class Limit:
    """A bound with a default, raised (or lowered) by `$DRILLCTL_LIMIT_<NAME>` for a real need."""

    name: str
    default: int
    unit: str
    what: str

    @property
    def env(self) -> str:
        return f"DRILLCTL_LIMIT_{self.name.upper()}"

    @property
    def value(self) -> int:
        """The default unless the environment says otherwise (read at each check: tests and CI set it)."""
        raw = os.environ.get(self.env)
        if raw is None:
            return self.default
        try:
            value = int(raw)
        except ValueError:
            return self.default
        return value if value > 0 else self.default

    def check(self, amount: int, where: str) -> None:
        """Raise LimitExceeded if `amount` is over the bound."""
        if amount > self.value:
            raise LimitExceeded(self, where, amount)


class LimitExceeded(DrillError):
    """An input is over one of the bounds below; nothing was built from it."""

    def __init__(self, limit: Limit, where: str, amount: int | None = None) -> None:
        self.limit = limit
        self.where = where
        self.amount = amount
        super().__init__(f"{where}: {self.reason}")

    @property
    def reason(self) -> str:
        """The message without the location, for callers that report the location their own way."""
        seen = "" if self.amount is None else f" ({self.amount:,} {self.limit.unit})"
        return (
            f"{self.limit.what} is over the limit of {self.limit.value:,} {self.limit.unit}{seen}; "
            f"if this is a real need, raise it with {self.limit.env}=N"
        )


# --- drill and game-day files ---

# Real drills and game days are a few KB: 1 MiB is 300 times that.
SPEC_FILE_BYTES = Limit("spec_file_bytes", 2**20, "bytes", "the size of a drill or game-day file")
# A real drill has a few hundred nodes; 50k also keeps composing a file under a second.
YAML_NODES = Limit("yaml_nodes", 50_000, "nodes", "the count of YAML nodes written in the file")
# Real aliases share a probe or a fault a few times; an alias bomb expands to billions.
YAML_EXPANDED_NODES = Limit(
    "yaml_expanded_nodes", 100_000, "nodes", "the count of YAML nodes once aliases are expanded"
)
# Real drills nest lists and mappings under 10 deep.
YAML_DEPTH = Limit("yaml_depth", 64, "levels", "the nesting of YAML lists and mappings")
# The longest real value is a command line, a URL or a description.
YAML_STRING_CHARS = Limit("yaml_string_chars", 2**16, "characters", "a YAML string")
# Real lists hold tens of faults, probes or drills.
YAML_LIST_ITEMS = Limit("yaml_list_items", 10_000, "items", "a YAML list")
# Real mappings have under 50 keys.
YAML_MAPPING_KEYS = Limit("yaml_mapping_keys", 10_000, "keys", "a YAML mapping")
# A game day names tens of drills, by name or by a glob over a folder of them.
GAMEDAY_DRILLS = Limit("gameday_drills", 1_000, "drills", "the drills of a game day")
# A glob looks at every directory entry on its way (`/**/*.yaml` is the whole filesystem): a drills folder has
# tens, and 20k are looked at in well under a second.
GAMEDAY_GLOB_ENTRIES = Limit(
    "gameday_glob_entries", 20_000, "directory entries", "the directory entries a game day's glob looks at"
)
# A runbook is a few pages of Markdown.
RUNBOOK_FILE_BYTES = Limit("runbook_file_bytes", 2**20, "bytes", "the size of a runbook file")


# --- run files and backend answers ---
#
# What drillctl reads back from its own run directories, and what backends answer. A run writes
# these files itself, so the defaults are far above anything a real run writes: they refuse a
# corrupt or hostile file, never a real one. Answers of backends are bounded per answer.


class AnswerTooLarge(LimitExceeded, BackendError):
    """A backend's answer is over its bound: a BackendError, so every caller treats it as that backend failing."""


REPORT_BYTES = Limit(
    "report_bytes",
    64 * 2**20,
    "bytes",
    "report.json",
    # A run writes at most 50,000 inline samples (about 6 MB at indent 1) plus 1,000 series buckets
    # a probe (about 150 KB): ten times the largest real report.
)
REPORT_VALUES = Limit(
    "report_values",
    4_000_000,
    "values",
    "report.json",
    # Counted as commas (some in strings, so a little over): 50,000 inline samples are 350,000, a series
    # about 10,000 a probe. Python holds a value in 30 to 70 bytes, so this bounds what the bytes cannot:
    # 64 MB of `[],` alone would be 1.6 GB once decoded.
)
SAMPLES_FILE_BYTES = Limit(
    "samples_file_bytes",
    2 * 2**30,
    "bytes",
    "samples.bin",
    # 24 bytes a sample: 89 million samples, a day at 1,000 samples a second.
)
OPERATIONS_FILE_BYTES = Limit(
    "operations_file_bytes",
    2 * 2**30,
    "bytes",
    "operations.bin",
    # 32 bytes an operation: 67 million operations, nine hours at 2,000 operations a second.
)
WORKLOAD_ANSWER_BYTES = Limit(
    "workload_answer_bytes",
    2**20,
    "bytes",
    "an answer to one workload operation (a value read, a command's output)",
    # Values this workload writes are a few digits; a key holding several is a few of them.
)
JOURNAL_BYTES = Limit(
    "journal_bytes",
    64 * 2**20,
    "bytes",
    "the journal",
    # A run writes two to four lines a fault; the largest (Kubernetes prior state) are tens of KB.
)
JOURNAL_LINE_BYTES = Limit(
    "journal_line_bytes",
    16 * 2**20,
    "bytes",
    "a journal line",
    # One undo record: a Kubernetes object is at most 1.5 MiB in etcd, and a record holds a few.
)
JOURNAL_ENTRIES = Limit(
    "journal_entries",
    100_000,
    "lines",
    "the journal",
    # Two to four lines a fault, a few more for each retried recovery: thousands of faults' worth.
)
ABORT_REQUEST_BYTES = Limit(
    "abort_request_bytes",
    4096,
    "bytes",
    "an abort request",
    # `drillctl abort` writes at most 1,000 characters (4,000 bytes) and a newline: one PIPE_BUF.
)
ABORT_REQUESTS = Limit(
    "abort_requests",
    100,
    "requests",
    "abort requests to one run",
    # The first one stops the run and later ones change nothing; past this the run stops reading them.
)
FREEZE_FILE_BYTES = Limit(
    "freeze_file_bytes",
    64 * 2**10,
    "bytes",
    "the freeze file",
    # `drillctl freeze` writes a reason of at most 1,000 characters, a time and who froze: about 4 KB at most.
)
WATCHDOG_LINE_BYTES = Limit(
    "watchdog_line_bytes",
    64 * 2**10,
    "bytes",
    "a line from the run to its watchdog",
    # The longest line the run sends is `deadline STEP T`, with a step id of a few hundred bytes.
)
HTTP_PROBE_BODY_BYTES = Limit(
    "http_probe_body_bytes",
    4 * 2**20,
    "bytes",
    "an http probe's response body",
    # Read only for `body_match`, which checks a health page, not a download.
)
PROMETHEUS_ANSWER_BYTES = Limit(
    "prometheus_answer_bytes",
    16 * 2**20,
    "bytes",
    "a Prometheus query answer",
    # About 100,000 series of an instant vector: a threshold query returns a handful.
)
PUSHGATEWAY_ANSWER_BYTES = Limit(
    "pushgateway_answer_bytes",
    64 * 2**10,
    "bytes",
    "a Pushgateway answer",
    # It answers a push with nothing, or one line of error.
)
WEBHOOK_ANSWER_BYTES = Limit(
    "webhook_answer_bytes",
    1 * 2**20,
    "bytes",
    "a webhook's answer",
    # Chat and incident tools answer a post with a short status document.
)
ALERTMANAGER_ANSWER_BYTES = Limit(
    "alertmanager_answer_bytes",
    4 * 2**20,
    "bytes",
    "an Alertmanager API answer",
    # /api/v2/status carries Alertmanager's whole configuration: a few hundred KB for a large one.
)
ALERT_WEBHOOK_BYTES = Limit(
    "alert_webhook_bytes",
    4 * 2**20,
    "bytes",
    "a webhook Alertmanager posts to the drill's receiver",
    # One notification carries one group's alerts with their labels and annotations: a few KB each.
)
ALERT_DELIVERIES = Limit(
    "alert_deliveries",
    10_000,
    "webhooks",
    "webhooks kept by the drill's receiver",
    # A drill pages a handful of times; past this the receiver answers but keeps nothing more.
)
ALERT_CHANGES = Limit(
    "alert_changes",
    100_000,
    "changes",
    "alert state changes kept by the drill's alert watcher",
    # A flapping alert polled every 50 ms for an hour changes at most 72,000 times.
)
ALERT_OUTAGES = Limit(
    "alert_outages",
    10_000,
    "stretches",
    "stretches of failed polls of Prometheus's alerts kept apart by the drill's alert watcher",
    # Past this, a new stretch is merged into the last one kept: the stretch grows, so nothing is judged as seen.
)
KUBE_ANSWER_BYTES = Limit(
    "kube_answer_bytes",
    64 * 2**20,
    "bytes",
    "a Kubernetes API answer",
    # An object is at most 1.5 MiB in etcd; a list page (KUBE_LIST_PAGE objects) is a few MB.
)
KUBE_LIST_ITEMS = Limit(
    "kube_list_items",
    100_000,
    "objects",
    "a Kubernetes list",
    # Objects of one kind in one namespace (or Nodes) a watch cache holds: more than any real cluster's.
)
KUBE_WATCH_EVENT_BYTES = Limit(
    "kube_watch_event_bytes",
    16 * 2**20,
    "bytes",
    "a Kubernetes watch event",
    # One event carries one object, at most 1.5 MiB in etcd, a few times that as JSON.
)
KUBE_EXEC_OUTPUT = Limit(
    "kube_exec_output",
    1 * 2**20,
    "bytes",
    "the output of a command run in a container",
    # drillctl's execs print one line (ending a loop early): a megabyte is thousands of times that.
)
LIVE_STATUS_BYTES = Limit(
    "live_status_bytes",
    4 * 2**20,
    "bytes",
    "a run's live.json, as `drillctl serve` reads it",
    # The engine writes a few KB: its phases and faults.
)
SERVE_REQUEST_BYTES = Limit(
    "serve_request_bytes",
    16 * 2**10,
    "bytes",
    "a request body `drillctl serve` accepts",
    # The only body it takes is the abort form: a reason of at most 1,000 characters and a token.
)
SERVE_CLIENTS = Limit(
    "serve_clients",
    64,
    "streams",
    "the live views `drillctl serve` streams to at once",
    # A game-day room is a few screens; each stream holds one pending document at most.
)
KUBE_LIST_PAGE = 500
"""Objects asked for in one list request (`limit`, with `continue` for the next page), as kubectl asks."""


def check_answer(limit: Limit, amount: int, where: str) -> None:
    """Like `limit.check`, for a backend's answer: raises AnswerTooLarge, a BackendError."""
    if amount > limit.value:
        raise AnswerTooLarge(limit, where, amount)


# --- Toxiproxy answers ---

TOXIPROXY_ANSWER = Limit("toxiproxy_answer", 4 * 2**20, "bytes", "an answer of the Toxiproxy API")

# --- target resolvers ---

RESOLVER_ANSWER_BYTES = Limit(
    "resolver_answer_bytes",
    1 * 2**20,
    "bytes",
    "a target resolver's answer (a command's output, an HTTP body)",
    # The answer names one node, pid or port: a status document of a few KB at most.
)
