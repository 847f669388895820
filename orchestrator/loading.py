"""YAML -> DrillSpec. Every spec error is found here, before any effect, with file, line and field."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from orchestrator.bounded_io import read_file
from orchestrator.errors import SpecError, SpecIssue
from orchestrator.limits import (
    SPEC_FILE_BYTES,
    YAML_DEPTH,
    YAML_EXPANDED_NODES,
    YAML_LIST_ITEMS,
    YAML_MAPPING_KEYS,
    YAML_NODES,
    YAML_STRING_CHARS,
    Limit,
    LimitExceeded,
)
from orchestrator.model.sizes import size_bytes
from orchestrator.model.spec import (
    WORKLOAD_SLAS,
    AlertFiringStop,
    AlertSlaBase,
    ClockSkewFault,
    DownFault,
    DrillSpec,
    ErrorRateSla,
    ErrorRateStop,
    FaultSpec,
    GcFullFault,
    GcPauseFault,
    KubernetesTargets,
    LatencySla,
    LocalTargets,
    MeasuredAlertSla,
    MemoryPressureFault,
    NetworkFault,
    NodeLossFault,
    PercentileSla,
    PodKillFault,
    RecoveryWindowSla,
    TargetResolver,
    TimeToNotifySla,
)
from orchestrator.runbooks import RunbookIndex

Path_ = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)
_GAMEDAY_KIND = re.compile(r"^kind:\s*GameDay\s*(#.*)?$", re.MULTILINE)


@dataclass(frozen=True)
class LoadedDrill:
    """A valid drill and where it came from (relative paths in it are resolved from `folder`)."""

    spec: DrillSpec
    path: Path
    runbooks: RunbookIndex

    @property
    def folder(self) -> Path:
        return self.path.parent


def load_drill(path: Path) -> LoadedDrill:
    """Load and fully check one drill file; raise SpecError listing every problem found."""
    file = str(path)
    data, lines = read_yaml(path)
    spec = validate_model(DrillSpec, data, lines, file)
    runbooks = RunbookIndex.for_drill(path)
    issues = [SpecIssue(file, _line(lines, loc), _field(loc), msg) for loc, msg in _cross_checks(spec)]
    issues += _workload_client_issues(spec, data, lines, file)
    issues += [
        SpecIssue(file, _line(lines, loc), _field(loc), msg)
        for loc, ref in _runbook_refs(spec)
        if (msg := runbooks.problem(ref)) is not None
    ]
    if issues:
        raise SpecError(issues)
    return LoadedDrill(spec=spec, path=path, runbooks=runbooks)


def read_yaml(path: Path) -> tuple[Any, Lines]:
    """A YAML file as Python data, with the line of every key and item (for GameDay files too)."""
    file = str(path)
    try:
        raw = read_file(path, SPEC_FILE_BYTES)
    except OSError as e:
        raise SpecError([SpecIssue(file, None, "", f"cannot read: {e.strerror}")]) from e
    except LimitExceeded as e:
        raise SpecError([SpecIssue(file, None, "", e.reason)]) from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(
            [SpecIssue(file, None, "", f"not UTF-8 text: byte {e.object[e.start]:#04x} at offset {e.start}")]
        ) from e
    if "\r" in text:  # universal newlines, as Path.read_text gave them
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _parse_yaml(text, file)


def validate_model(model: type[M], data: Any, lines: Mapping[Path_, int], file: str) -> M:
    """Check `data` against a strict pydantic model; every error located at what the user wrote."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise SpecError([_issue_from_pydantic(err, file, data, lines) for err in e.errors()]) from e


def issue_at(file: str, lines: Mapping[Path_, int], loc: Path_, message: str) -> SpecIssue:
    return SpecIssue(file, _line(lines, loc), _field(loc), message)


def find_drills(paths: list[Path]) -> list[Path]:
    """Expand folders into the drill files they hold, so `validate drills/` checks them all.

    GameDay files in a folder are skipped: they are not drills (`drillctl gameday plan` checks them).
    """
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml") and not is_gameday(q))
        else:
            found.append(p)
    return found


def is_gameday(path: Path) -> bool:
    """A quick look at the top-level `kind`, to tell GameDay files from drills in folders and globs.

    A file over the size limit is not one: loading it as a drill then says why it is refused.
    """
    try:
        return _GAMEDAY_KIND.search(read_file(path, SPEC_FILE_BYTES).decode("utf-8")) is not None
    except (OSError, UnicodeDecodeError, LimitExceeded):
        return False


# --- YAML with positions ------------------------------------------------------------------------


class _Composer(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser keeps node marks too and composes ~14x faster (bench/cli_startup.py: validate 100 drills).

    The tag of a plain scalar depends on its text alone (drillctl adds no path resolvers), and drills say
    `true`, `5s` and their names many times over: each text is resolved by PyYAML's regular expressions once.
    """

    _tags: ClassVar[dict[str, str]] = {}
    _TAGS_KEPT: ClassVar[int] = 4096

    def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is not _SCALAR or not implicit[0]:
            return str(super().resolve(kind, value, implicit))
        tag = self._tags.get(value)
        if tag is None:
            tag = str(super().resolve(kind, value, implicit))
            if len(self._tags) < self._TAGS_KEPT and len(value) < 256:
                self._tags[value] = tag
        return tag


_COMPOSER = _Composer


_COUNT_EVENTS_ABOVE = 64 * 2**10
"""Composing a file this small takes well under a second whatever it holds; above it, nodes are counted first."""

_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent, yaml.AliasEvent)


def _parse_yaml(text: str, file: str) -> tuple[Any, Lines]:
    """Compose the YAML ourselves to keep the line of every key and item (1-based)."""
    try:
        if len(text) > _COUNT_EVENTS_ABOVE:
            _count_nodes(text, file)
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.MarkedYAMLError as e:
        raise SpecError([_yaml_issue(e, text, file)]) from e
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (NUL, most control characters)
        line = text[: e.position].count("\n") + 1
        issue = SpecIssue(file, line, "", f"malformed YAML: character #x{e.character:04x} is not allowed")
        raise SpecError([issue]) from e
    except RecursionError as e:
        raise SpecError([SpecIssue(file, None, "", "malformed YAML: nested too deeply")]) from e
    if node is None:
        raise SpecError([SpecIssue(file, 1, "", "the file is empty")])
    try:
        _check_bounds(node, file)
    except RecursionError as e:
        raise SpecError([SpecIssue(file, None, "", "malformed YAML: nested too deeply")]) from e
    lines = Lines(node, file)
    try:
        return _plain(node, lines.scalars), lines
    except (_NotPlain, yaml.YAMLError, ValueError, TypeError, AttributeError):
        return lines.data(), lines  # the careful reading, which says where and why


class Lines(Mapping[Path_, int]):
    """The line of every key and item (1-based), read from the node graph only when an issue asks for one.

    Most files are valid: their data is built without a path per node, and no line is ever looked up.
    """

    def __init__(self, node: yaml.Node, file: str) -> None:
        self.node, self.file, self.scalars = node, file, _Scalars()
        self._lines: dict[Path_, int] | None = None
        self._data: Any = None

    def data(self) -> Any:
        """The data as `_to_python` builds it, keeping lines; SpecError for any value it cannot build."""
        if self._lines is None:
            lines: dict[Path_, int] = {}
            issues: list[SpecIssue] = []
            self._data = _to_python(self.node, (), self.scalars, lines, issues, self.file)
            self._lines = lines
            if issues:
                raise SpecError(issues)
        return self._data

    def _read(self) -> dict[Path_, int]:
        if self._lines is None:
            self.data()
        assert self._lines is not None
        return self._lines

    def __getitem__(self, loc: Path_) -> int:
        return self._read()[loc]

    def __contains__(self, loc: object) -> bool:
        return loc in self._read()

    def __iter__(self) -> Iterator[Path_]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


class _NotPlain(Exception):
    """Merge keys, a duplicate key, a key that is no scalar: the careful reading builds it, or says why not."""


_MAPPING = yaml.MappingNode
_MERGE = "tag:yaml.org,2002:merge"


def _plain(node: yaml.Node, scalars: _Scalars) -> Any:
    """What `_to_python` builds, for the common file, in a third of its time: no paths, no lines."""
    kind = node.__class__
    if kind is _MAPPING:
        out: dict[str, Any] = {}
        for key, value in node.value:
            if key.__class__ is not _SCALAR or key.tag == _MERGE:
                raise _NotPlain
            out[key.value if key.tag == _STR else str(scalars.construct_object(key))] = _plain(value, scalars)
        if len(out) != len(node.value):
            raise _NotPlain
        return out
    if kind is _SEQUENCE:
        return [_plain(item, scalars) for item in node.value]
    return node.value if node.tag == _STR else scalars.construct_object(node)


def _count_nodes(text: str, file: str) -> None:
    """Count nodes on libyaml's event stream, so a big file of tiny nodes is refused before its graph is built."""
    cap = YAML_NODES.value
    count = 0
    for event in yaml.parse(text, Loader=_COMPOSER):
        if isinstance(event, _NODE_EVENTS):
            count += 1
            if count > cap:
                line = None if event.start_mark is None else event.start_mark.line + 1
                raise SpecError([SpecIssue(file, line, "", LimitExceeded(YAML_NODES, file).reason)])


def _check_bounds(node: yaml.Node, file: str) -> None:
    """Refuse a node graph over a bound before any Python object is built from it (aliases would be expanded)."""
    measure = _Measure(file)
    try:
        if node.__class__ is _SCALAR:
            measure.scalar(node, node.start_mark.line + 1, None)
        else:
            measure.size(node, 0)
    except _Refused as e:
        raise SpecError([SpecIssue(file, e.line, _field(tuple(reversed(e.parts))), e.message)]) from e.cause


class _Refused(Exception):
    """A bound hit in the node graph, located as it unwinds: nothing is spent on paths unless one is hit."""

    def __init__(self, line: int, message: str, cause: LimitExceeded | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.cause = cause
        self.located = False
        self.parts: list[str | int] = []

    def at(self, part: str | int, line: int) -> _Refused:
        """Add the key or index that led here; the innermost one also gives the line (a key's, not its value's)."""
        self.parts.append(part)
        if not self.located:
            self.line, self.located = line, True
        return self


_SCALAR = yaml.ScalarNode
_SEQUENCE = yaml.SequenceNode
_FRESH = (-1, -1)


class _Measure:
    """Sizes of the node graph, memoised by node identity: linear in the nodes written, whatever aliases expand to.

    Written nodes are counted per list or mapping (its items, or twice its keys, each a node or an alias),
    so scalars cost one type test and one length each.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.nodes, self.expanded, self.depth = YAML_NODES.value, YAML_EXPANDED_NODES.value, YAML_DEPTH.value
        self.chars, self.items, self.keys = YAML_STRING_CHARS.value, YAML_LIST_ITEMS.value, YAML_MAPPING_KEYS.value
        self.written = 1
        self.known: dict[int, tuple[int, int] | None] = {}
        """id(node) -> (nodes once aliases are expanded, levels of lists and mappings); None while inside it."""

    def over(self, limit: Limit, line: int, amount: int | None = None) -> _Refused:
        cause = LimitExceeded(limit, f"{self.file}:{line}", amount)
        return _Refused(line, cause.reason, cause)

    def count_written(self, count: int, node: yaml.Node) -> None:
        """Add the nodes (or aliases) a list or mapping holds as written; refuse the file past YAML_NODES."""
        self.written += count
        if self.written > self.nodes:
            raise self.over(YAML_NODES, node.start_mark.line + 1)

    def scalar(self, node: yaml.Node, line: int, part: str | int | None) -> None:
        """Refuse a string over the limit, at `part` on `line` (where it was found)."""
        if len(node.value) > self.chars:
            refused = self.over(YAML_STRING_CHARS, line, len(node.value))
            raise refused if part is None else refused.at(part, line)

    def size(self, node: yaml.Node, depth: int) -> tuple[int, int]:
        """(nodes once aliases are expanded, levels) of a list or mapping found inside `depth` others."""
        known = self.known.get(id(node), _FRESH)
        if known is not _FRESH:
            if known is None:
                raise _Refused(node.start_mark.line + 1, "malformed YAML: an alias refers to a node that contains it")
            if depth + known[1] > self.depth:
                raise self.over(YAML_DEPTH, node.start_mark.line + 1)
            return known
        if depth >= self.depth:
            raise self.over(YAML_DEPTH, node.start_mark.line + 1)
        self.known[id(node)] = None
        # libyaml composes scalars, sequences and mappings only
        result = self._sequence(node, depth + 1) if node.__class__ is _SEQUENCE else self._mapping(node, depth + 1)
        self.known[id(node)] = result
        return result

    def _sequence(self, node: yaml.Node, depth: int) -> tuple[int, int]:
        items = node.value
        if len(items) > self.items:
            raise self.over(YAML_LIST_ITEMS, node.start_mark.line + 1, len(items))
        self.count_written(len(items), node)
        total, height, chars, expanded = 1, 0, self.chars, self.expanded
        for index, item in enumerate(items):
            if item.__class__ is _SCALAR:
                if len(item.value) > chars:
                    self.scalar(item, _item_line(node, item), index)
                total += 1
            else:
                try:
                    size, levels = self.size(item, depth)
                except _Refused as e:
                    raise e.at(index, _item_line(node, item)) from None
                total += size
                height = max(height, levels)
            if total > expanded:
                line = _item_line(node, item)
                raise self.over(YAML_EXPANDED_NODES, line).at(index, line)
        return total, height + 1

    def _mapping(self, node: yaml.Node, depth: int) -> tuple[int, int]:
        pairs = node.value
        if len(pairs) > self.keys:
            raise self.over(YAML_MAPPING_KEYS, node.start_mark.line + 1, len(pairs))
        self.count_written(2 * len(pairs), node)
        total, height, chars, expanded = 1, 0, self.chars, self.expanded
        for key, value in pairs:
            short = key.__class__ is _SCALAR and value.__class__ is _SCALAR
            if short and len(key.value) <= chars and len(value.value) <= chars:
                total += 2  # most pairs: two short scalars, nothing to descend into
            else:
                size, levels = self._pair(key, value, depth)
                total += size
                height = max(height, levels)
            if total > expanded:
                line = key.start_mark.line + 1
                raise self.over(YAML_EXPANDED_NODES, line).at(_label(key), line)
        return total, height + 1

    def _pair(self, key: yaml.Node, value: yaml.Node, depth: int) -> tuple[int, int]:
        """(nodes once aliases are expanded, levels) of a key and its value, refused at the key's line."""
        total, height = 0, 0
        for child in (key, value):
            if child.__class__ is _SCALAR:
                self.scalar(child, key.start_mark.line + 1, _label(key))
                total += 1
                continue
            try:
                size, levels = self.size(child, depth)
            except _Refused as e:
                raise e.at(_label(key), key.start_mark.line + 1) from None
            total += size
            height = max(height, levels)
        return total, height


def _item_line(sequence: yaml.Node, item: yaml.Node) -> int:
    """An item's line if it is written in the list; an alias to a node written before: the list's line."""
    at = item if item.start_mark.index >= sequence.start_mark.index else sequence
    return at.start_mark.line + 1


def _label(key: yaml.Node) -> str:
    """A key as a field name (a long one cut, a list or mapping as a key shown as `?`)."""
    if key.__class__ is not _SCALAR:
        return "?"
    text = str(key.value)
    return text if len(text) <= 40 else text[:40] + "..."


def _yaml_issue(e: yaml.MarkedYAMLError, text: str, file: str) -> SpecIssue:
    """Point at the problem, unless it is the end of the file: then at what was left open there."""
    mark = e.problem_mark
    if (mark is None or mark.line >= len(text.splitlines())) and e.context_mark is not None:
        mark = e.context_mark
    detail = f"{e.context}: {e.problem}" if e.context else str(e.problem)
    return SpecIssue(file, None if mark is None else mark.line + 1, "", f"malformed YAML: {detail}")


class _Scalars(yaml.SafeLoader):
    """Constructs single scalars with YAML's safe rules (so `on`, `1e3`, `~` mean what YAML says)."""

    def __init__(self) -> None:
        super().__init__("")


_STR = "tag:yaml.org,2002:str"


def _scalar(node: yaml.Node, scalars: _Scalars) -> Any:
    """A string is its node's value, as the safe constructor would return it, without a third of the load's time
    spent getting there (bench/cli_startup.py); other tags go through the constructor."""
    if type(node) is yaml.ScalarNode and node.tag == _STR:
        return node.value
    return scalars.construct_object(node)


def _to_python(
    node: yaml.Node,
    path: Path_,
    scalars: _Scalars,
    lines: dict[Path_, int],
    issues: list[SpecIssue],
    file: str,
) -> Any:
    lines[path] = node.start_mark.line + 1
    try:
        if isinstance(node, yaml.MappingNode):
            written = sum(k.tag != "tag:yaml.org,2002:merge" for k, _ in node.value)
            scalars.flatten_mapping(node)  # `<<: *anchor` merge keys, as yaml.safe_load does: merged first
            merged = len(node.value) - written
            out: dict[str, Any] = {}
            explicit: set[str] = set()
            for index, (key_node, value_node) in enumerate(node.value):
                key = str(_scalar(key_node, scalars))
                if index >= merged and key in explicit:
                    issues.append(SpecIssue(file, key_node.start_mark.line + 1, _field((*path, key)), "duplicate key"))
                if index >= merged:
                    explicit.add(key)
                out[key] = _to_python(value_node, (*path, key), scalars, lines, issues, file)
                lines[(*path, key)] = key_node.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            return [_to_python(item, (*path, i), scalars, lines, issues, file) for i, item in enumerate(node.value)]
        return _scalar(node, scalars)
    except (yaml.YAMLError, ValueError, TypeError, AttributeError) as e:
        # Tags the safe loader cannot build (`!Ref`, `!!python/...`) or values that do not fit theirs (`!!int abc`).
        problem = getattr(e, "problem", None) or str(e)
        issues.append(
            SpecIssue(file, node.start_mark.line + 1, _field(path), f"cannot read this YAML value: {problem}")
        )
        return None


def _line(lines: Mapping[Path_, int], loc: Path_) -> int | None:
    """The line of the deepest part of `loc` that exists in the file."""
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def _field(loc: Path_) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _issue_from_pydantic(err: Any, file: str, data: Any, lines: Mapping[Path_, int]) -> SpecIssue:
    """Drop the union tags pydantic adds to locations so the field matches what the user wrote."""
    loc: list[str | int] = []
    node = data
    for part in err["loc"]:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            node = node[part]
            loc.append(part)
        elif err["type"] in ("missing", "extra_forbidden") and part == err["loc"][-1]:
            loc.append(part)
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append(err["ctx"]["discriminator"].strip("'"))
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    elif err["type"] == "missing":
        message = "required field is missing"
    elif err["type"] == "union_tag_invalid":
        tag = err["ctx"]["discriminator"].strip("'")  # `type`, or a nested union's own tag (`check`)
        message = f"unknown {tag} {err['ctx']['tag']!r}; expected one of {err['ctx']['expected_tags']}"
    elif err["type"] == "union_tag_not_found":
        message = "required field is missing"
    elif err["type"] == "string_pattern_mismatch" and loc and loc[-1] == "runbook":
        message = f"expected runbooks/<file>.md#<anchor>, got {err['input']!r}"
    elif err["type"] == "string_pattern_mismatch" and loc and loc[-1] == "alert":
        message = f"expected an alert name (letters, digits, _ : . -, not starting with a digit), got {err['input']!r}"
    elif err["type"] == "string_pattern_mismatch" and loc and loc[-1] in ("name", "proxy", "probe", "fault"):
        message = f"expected lowercase letters, digits and dashes, got {err['input']!r}"
    return SpecIssue(file, _line(lines, tuple(loc)), _field(tuple(loc)), message)


# --- rules across fields ------------------------------------------------------------------------


def _cross_checks(spec: DrillSpec) -> Iterator[tuple[Path_, str]]:
    body = spec.spec
    yield from _unique("proxies", [p.name for p in body.proxies])
    yield from _unique("steady_state.probes", [p.name for p in body.steady_state.probes])
    yield from _unique("faults", [f.name for f in body.faults])
    yield from _unique("slas", [s.name for s in body.slas])
    yield from _stop_condition_checks(spec)
    yield from _unique("targets.local.processes", [p.name for p in body.targets.local.processes])

    proxies = {p.name for p in body.proxies}
    probes = {p.name for p in body.steady_state.probes}
    faults = {f.name for f in body.faults}
    fault_phase = body.phases.fault
    for i, f in enumerate(body.faults):
        at: Path_ = ("spec", "faults", i)
        if isinstance(f, NetworkFault | DownFault) and f.proxy not in proxies:
            yield (*at, "proxy"), f"names proxy {f.proxy!r}, which spec.proxies does not declare"
        if fault_phase is not None and f.start + f.duration > fault_phase + 1e-9:
            yield (
                (*at, "duration"),
                (f"ends at {f.start + f.duration:g}s, past the end of the fault phase ({fault_phase:g}s)"),
            )
    yield from _overlapping(spec)
    yield from _local_target_checks(spec)
    yield from _kube_skew_and_pod_checks(spec)
    yield from _kube_blast_radius_checks(spec)

    for i, s in enumerate(body.slas):
        at = ("spec", "slas", i)
        if isinstance(s, WORKLOAD_SLAS):
            if body.workload is None:
                yield (*at, "type"), f"a {s.type} SLA needs spec.workload"
        elif isinstance(s, LatencySla):
            if s.probe not in probes:
                yield (*at, "probe"), f"names unknown probe {s.probe!r}"
        elif isinstance(s, RecoveryWindowSla | ErrorRateSla):
            for k, name in enumerate(s.probes or []):
                if name not in probes:
                    yield (*at, "probes", k), f"names unknown probe {name!r}"
        if isinstance(s, RecoveryWindowSla):
            if s.fault is not None and s.fault not in faults:
                yield (*at, "fault"), f"names unknown fault {s.fault!r}"
            if not body.faults:
                yield (*at, "type"), "a recovery_window SLA needs at least one fault"
        if isinstance(s, PercentileSla) and not s.thresholds():
            yield (*at, "type"), f"a {s.type} SLA needs at least one of p50, p90, p99, max"
    yield from _alert_checks(spec)


def _workload_client_issues(spec: DrillSpec, data: Any, lines: Mapping[Path_, int], file: str) -> list[SpecIssue]:
    """The workload's client resolved (built in, or an installed entry point) and its options checked by its model."""
    workload = spec.spec.workload
    if workload is None:
        return []
    from orchestrator.workloads.registry import UnknownClient, options_of  # only drills with a workload pay for it

    at: Path_ = ("spec", "workload", "client")
    try:
        options_of(workload.client)
    except UnknownClient as e:
        return [issue_at(file, lines, (*at, "type"), str(e))]
    except ValidationError as e:
        return [_issue_from_pydantic({**err, "loc": (*at, *err["loc"])}, file, data, lines) for err in e.errors()]
    return []


def _alert_checks(spec: DrillSpec) -> Iterator[tuple[Path_, str]]:
    """Alert SLAs and stop conditions need the Prometheus to watch; time_to_notify needs the receiver too."""
    body = spec.spec
    faults = {f.name for f in body.faults}
    alerts = body.alerts
    for i, s in enumerate(body.slas):
        at: Path_ = ("spec", "slas", i)
        if not isinstance(s, AlertSlaBase):
            continue
        if alerts is None:
            yield (*at, "type"), f"a {s.type} SLA needs spec.alerts.prometheus (where the drill watches alerts)"
        if isinstance(s, MeasuredAlertSla):
            if s.fault is not None and s.fault not in faults:
                yield (*at, "fault"), f"names unknown fault {s.fault!r}"
            if not body.faults:
                yield (*at, "type"), f"a {s.type} SLA is measured from a fault's impact: the drill has no fault"
        if isinstance(s, TimeToNotifySla) and alerts is not None:
            if alerts.receiver is None:
                yield (*at, "type"), "time_to_notify needs spec.alerts.receiver (the webhook Alertmanager posts to)"
            if alerts.alertmanager is None:
                yield (*at, "type"), "time_to_notify needs spec.alerts.alertmanager (checked in preflight)"
    for i, c in enumerate(body.stop_conditions):
        if isinstance(c, AlertFiringStop) and alerts is None:
            yield ("spec", "stop_conditions", i, "type"), "alert_firing needs spec.alerts.prometheus"


def _stop_condition_checks(spec: DrillSpec) -> Iterator[tuple[Path_, str]]:
    body = spec.spec
    yield from _unique("stop_conditions", [c.name for c in body.stop_conditions])
    probes = {p.name for p in body.steady_state.probes}
    for i, c in enumerate(body.stop_conditions):
        at: Path_ = ("spec", "stop_conditions", i)
        if isinstance(c, AlertFiringStop):
            continue
        if c.probe not in probes:
            yield (*at, "probe"), f"names unknown probe {c.probe!r}"
        if isinstance(c, ErrorRateStop) and c.window < body.steady_state.interval:
            yield (
                (*at, "window"),
                f"a window of {c.window:g}s is shorter than the sampling interval ({body.steady_state.interval:g}s)",
            )


def _local_target_checks(spec: DrillSpec) -> Iterator[tuple[Path_, str]]:
    local = spec.spec.targets.local
    processes = {p.name: p for p in local.processes}
    adopted = {p.name for p in local.adopted}
    nodes = {n.name for n in local.nodes}
    proxies = {p.name for p in spec.spec.proxies}
    yield from _unique("targets.local.nodes", [n.name for n in local.nodes])
    for k, name in enumerate(p.name for p in local.adopted):
        if name in processes or name in nodes:
            yield ("spec", "targets", "local", "adopted", k, "name"), f"{name!r} is also a started process or a node"
    for i, node in enumerate(local.nodes):
        at: Path_ = ("spec", "targets", "local", "nodes", i)
        if node.name in processes:
            yield (*at, "name"), f"node {node.name!r} has the name of a process; fault targets would be ambiguous"
        for k, name in enumerate(node.processes):
            if name not in processes and name not in adopted:
                yield (
                    (*at, "processes", k),
                    f"names process {name!r}, which targets.local.processes (or .adopted) does not declare",
                )
        for k, name in enumerate(node.proxies):
            if name not in proxies:
                yield (*at, "proxies", k), f"names proxy {name!r}, which spec.proxies does not declare"
    for i, f in enumerate(spec.spec.faults):
        at = ("spec", "faults", i)
        if f.backend != "local":
            continue
        if isinstance(f, NodeLossFault):
            yield from _named_target(at, "node", f.node, nodes, "node", "targets.local.nodes")
            continue
        if not isinstance(f, ClockSkewFault | GcPauseFault | MemoryPressureFault | GcFullFault):
            continue
        memory = isinstance(f, MemoryPressureFault)
        known = processes.keys() | adopted if memory else processes.keys() | adopted | nodes
        what = "process" if memory else "process or node"
        issues = list(_named_target(at, "target", f.target, known, what, "targets.local"))
        yield from issues
        if isinstance(f, GcPauseFault) and f.pause + f.jitter >= f.every:
            yield (
                (*at, "pause"),
                (f"a pause of {f.pause:g}s (+{f.jitter:g}s jitter) does not fit in its period of {f.every:g}s"),
            )
        if issues:
            continue
        if isinstance(f, ClockSkewFault):
            yield from _skew_checks(at, f.target, local)
        if isinstance(f.target, TargetResolver):
            continue  # a resolved target is checked by its driver once resolved
        if isinstance(f, MemoryPressureFault):
            started = processes.get(f.local_target)
            yield from _memory_check(at, f, None if started is None else started.memory_limit)


def _skew_checks(at: Path_, target: str | TargetResolver | None, local: LocalTargets) -> Iterator[tuple[Path_, str]]:
    """clock.skew moves clocks through libfaketime, which only processes drillctl starts with clock: faketime have
    preloaded: a target named outright, or any a resolver's `names` maps to, must be such processes only."""
    if isinstance(target, TargetResolver):
        if not any(p.clock == "faketime" for p in local.processes):
            yield (
                (*at, "target"),
                "this resolver can only name a process (or node) started under libfaketime, and no process in "
                "targets.local.processes has clock: faketime: drillctl moves only the clocks of processes it "
                "starts under libfaketime, never an adopted one's",
            )
        for key, name in target.names.items():
            if (why := local.unskewable(name)) is not None:
                yield (*at, "target", "names", key), why
    elif target is not None and (why := local.unskewable(target)) is not None:
        yield (*at, "target"), why


def _named_target(
    at: Path_, field: str, target: str | TargetResolver | None, known: AbstractSet[str], what: str, where: str
) -> Iterator[tuple[Path_, str]]:
    """A target named outright is declared; a resolver's `names` map only to declared ones."""
    if isinstance(target, TargetResolver):
        for key, name in target.names.items():
            if name not in known:
                yield (*at, field, "names", key), f"maps to {what} {name!r}, which {where} does not declare"
    elif target not in known:
        yield (*at, field), f"names {what} {target!r}, which {where} does not declare"


def _kube_skew_and_pod_checks(spec: DrillSpec) -> Iterator[tuple[Path_, str]]:
    """clock.skew on nodes is opt-in; node skews take no drift; a pod pause fits its period."""
    kube = spec.spec.targets.kubernetes
    for i, f in enumerate(spec.spec.faults):
        at: Path_ = ("spec", "faults", i)
        if isinstance(f, ClockSkewFault) and f.scope == "node":
            if kube is None or not kube.allow_node_clock_change:
                yield (
                    (*at, "scope"),
                    "scope node changes the clock of real nodes: opt in with "
                    "targets.kubernetes.allow_node_clock_change: true",
                )
            if f.drift is not None:
                yield (*at, "drift"), "drift applies to scope workload (libfaketime) only, not to a node's clock"
        if isinstance(f, ClockSkewFault) and f.library is not None and f.scope != "workload":
            yield (*at, "library"), "library (libfaketime in the image) applies to scope workload only"
        if isinstance(f, GcPauseFault) and f.backend == "kubernetes" and f.pause + f.jitter >= f.every:
            yield (
                (*at, "pause"),
                (f"a pause of {f.pause:g}s (+{f.jitter:g}s jitter) does not fit in its period of {f.every:g}s"),
            )


def _kube_blast_radius_checks(spec: DrillSpec) -> Iterator[tuple[Path_, str]]:
    """What the drill alone shows to be over its limits (the cluster is judged again in preflight)."""
    kube = spec.spec.targets.kubernetes or KubernetesTargets()
    allowed = kube.allowed_namespaces or ([kube.namespace] if kube.namespace else [])
    for i, f in enumerate(spec.spec.faults):
        at: Path_ = ("spec", "faults", i)
        if isinstance(f, NodeLossFault) and f.nodes is not None and (n := f.nodes.count or 1) > kube.max_nodes:
            yield (*at, "nodes", "count"), f"{n} nodes is over targets.kubernetes.max_nodes ({kube.max_nodes})"
        if not isinstance(f, PodKillFault):
            continue
        if (n := f.pods.count or 1) > kube.max_pods:
            yield (*at, "pods", "count"), f"{n} pods is over targets.kubernetes.max_pods ({kube.max_pods})"
        namespace = f.pods.namespace
        if namespace == "kube-system" and "kube-system" not in kube.allowed_namespaces:
            yield (*at, "pods", "namespace"), "kube-system needs naming in targets.kubernetes.allowed_namespaces"
        elif namespace is not None and allowed and namespace not in allowed:
            yield (*at, "pods", "namespace"), f"{namespace} is outside the allowed namespaces ({', '.join(allowed)})"


def _memory_check(at: Path_, f: MemoryPressureFault, limit_text: str | None) -> Iterator[tuple[Path_, str]]:
    limit = None if limit_text is None else size_bytes(limit_text, None)
    wanted = size_bytes(f.size, limit)
    if wanted is None:
        yield (*at, "size"), f"{f.size} is a share of a memory limit, but process {f.target!r} has no memory_limit"
    elif limit is not None and wanted > limit and not f.force:
        yield (*at, "size"), f"{f.size} is above the memory limit of {f.target!r} ({limit_text}); set force: true"


def _unique(where: str, names: list[str]) -> Iterator[tuple[Path_, str]]:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            yield ("spec", *where.split("."), i, "name"), f"duplicate name {name!r}"
        seen.add(name)


def _exclusive_target(fault: FaultSpec) -> str | None:
    """What a fault takes over while it runs, as a phrase; two faults on one thing would undo each other."""
    if isinstance(fault, DownFault):
        return f"take proxy {fault.proxy!r} down"
    if fault.backend != "local":
        return None
    if isinstance(fault, ClockSkewFault):
        return f"skew the clock of {fault.target!r}"
    if isinstance(fault, GcPauseFault):
        return f"pause {fault.target!r}"
    if isinstance(fault, NodeLossFault):
        return f"take down node {fault.node!r}"
    return None


def _overlapping(spec: DrillSpec) -> Iterator[tuple[Path_, str]]:
    """Overlapping faults on one exclusive target: the first revert would end the other's effect too."""
    owned = [(f, what) for f in spec.spec.faults if (what := _exclusive_target(f)) is not None]
    index = {f.name: i for i, f in enumerate(spec.spec.faults)}
    for a, (f, what) in enumerate(owned):
        f_end = f.start + f.duration if f.reverts_on_schedule else math.inf
        for g, other in owned[a + 1 :]:
            g_end = g.start + g.duration if g.reverts_on_schedule else math.inf
            if what == other and f.start < g_end and g.start < f_end:
                yield ("spec", "faults", index[g.name], "start"), f"overlaps fault {f.name!r}: both {what}"


def _runbook_refs(spec: DrillSpec) -> Iterator[tuple[Path_, str]]:
    if spec.metadata.runbook:
        yield ("metadata", "runbook"), spec.metadata.runbook
    for kind, items in (("faults", spec.spec.faults), ("slas", spec.spec.slas)):
        for i, item in enumerate(items):
            if item.runbook:
                yield ("spec", kind, i, "runbook"), item.runbook
