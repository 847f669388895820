"""The privileged helper pod of node clock skew: it steps its node's wall clock by an offset and back.

The clock is not namespaced, so a container with CAP_SYS_TIME (privileged) sets the node's clock
without entering the host. The pod steps the clock back on its own exit: on SIGTERM (a revert, or
`drillctl recover --cluster`, deletes the pod), after the fault's duration, or when
`activeDeadlineSeconds` passes and the kubelet stops it; a dead drillctl leaves no skewed node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from orchestrator.kube.marks import HELPER_LABELS, PREFIX
from orchestrator.kube.objects import shell_command

HELPER_LABEL = PREFIX + "helper"
HELPER_MARGIN = 30
"""Seconds past the fault's duration after which the kubelet stops a helper pod (and its trap restores)."""
HELPER_GRACE = 30
"""terminationGracePeriodSeconds of helper pods: time for the TERM trap to step the clock back."""
GONE_TIMEOUT = HELPER_GRACE + 30.0
"""How long deleting a helper waits for it to be gone (its trap has stepped the clock back by then)."""


def helper_pod(
    name: str, node: str, image: str, offset: float, duration: float, annotations: Mapping[str, str]
) -> dict[str, Any]:
    """The privileged pod that steps `node`'s clock by `offset` and back; it ends by itself."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {**HELPER_LABELS, HELPER_LABEL: "clock-skew"},
            "annotations": {**annotations, "drillctl.io/node": node},
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": math.ceil(duration) + HELPER_MARGIN,
            "terminationGracePeriodSeconds": HELPER_GRACE,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "clock",
                    "image": image,
                    "command": shell_command(NODE_CLOCK_SCRIPT),
                    "env": [
                        {"name": "OFFSET_NS", "value": str(round(offset * 1e9))},
                        {"name": "HOLD_CS", "value": str(round(duration * 100))},
                    ],
                    "securityContext": {"privileged": True},
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ],
        },
    }


NODE_CLOCK_SCRIPT = r"""
set -u
now_ns() {
  t=$(date +%s%N)
  case $t in *[!0-9]*) t=$(( $(date +%s) * 1000000000 )) ;; esac
  echo "$t"
}
# Step the wall clock by $1 ns. busybox `date -s @N` takes whole seconds, so wait for the moment
# the new time is a whole second: the step is then exact to the cost of one fork.
step() {
  target=$(( $(now_ns) + $1 ))
  rest=$(( (1000000000 - target % 1000000000) % 1000000000 ))
  [ "$rest" -gt 0 ] && sleep "0.$(printf '%09d' "$rest")"
  date -s "@$(( (target + rest) / 1000000000 ))" >/dev/null
}
back() {
  [ -n "${!:-}" ] && kill "$!" 2>/dev/null
  step $(( -OFFSET_NS ))
  echo "drillctl: clock stepped back by $(( -OFFSET_NS ))ns ($1)"
  exit 0
}
stop=0
trap 'stop=1' TERM INT HUP
step "$OFFSET_NS"
echo "drillctl: clock stepped by ${OFFSET_NS}ns for ${HOLD_CS}0ms"
trap 'back stopped' TERM INT HUP
[ "$stop" = 1 ] && back stopped
# Hold on the uptime clock (the wall clock is the one being stepped), in slices of at most 1s:
# dash can lose a signal that lands just before `wait` blocks; the slice's end then handles it.
now_cs() { read -r up _ < /proc/uptime; echo "${up%.*}${up#*.}"; }
end=$(( $(now_cs) + HOLD_CS ))
while left=$(( end - $(now_cs) )); [ "$left" -gt 0 ]; do
  s=$(( left >= 100 ? 100 : left ))
  sleep "$(( s / 100 )).$(printf '%02d' $(( s % 100 )))" & wait "$!"
done
back "duration over"
"""
