"""Start a command detached, print its pid, exit: the restart of an adopted process.

    python -m orchestrator.targets.detach LOG CWD -- ARGV...

The command runs in a session of its own, its output appended to LOG, and since this helper exits
at once it is nobody's child: it outlives drillctl, no event loop ever reaps or kills it, and the
process that asked is told its pid (stdout) or why it could not start (stderr, exit 1).
"""

from __future__ import annotations

import subprocess
import sys


def main(argv: list[str]) -> int:
    log, cwd, dashes, *command = argv[1:]
    if dashes != "--" or not command:
        print("usage: detach LOG CWD -- ARGV...", file=sys.stderr)
        return 2
    try:
        with open(log, "ab") as out:
            child = subprocess.Popen(
                command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
    except OSError as e:
        print(f"cannot start {command[0]}: {e}", file=sys.stderr)
        return 1
    print(child.pid, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
