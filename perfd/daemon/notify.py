"""systemd service notifications (sd_notify(3)) and the watchdog interval, in the stdlib.

Under ``Type=notify`` systemd passes the path of a datagram socket in ``$NOTIFY_SOCKET``
(a leading ``@`` names the abstract namespace); a state is one datagram of newline-separated
``KEY=VALUE`` lines: ``READY=1`` once the HTTP port answers, ``RELOADING=1`` and ``READY=1``
around a reload, ``STOPPING=1``, ``STATUS=...``, and ``WATCHDOG=1`` at the rate
``watchdog_interval_s()`` gives, sent by the loop whose liveness it proves (not by a timer
thread of its own, which would keep pinging while the daemon hangs). Outside systemd both
functions are harmless no-ops, so the daemon calls them unconditionally.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def notify(*states: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send states ("READY=1", ...) to systemd in one datagram; False without $NOTIFY_SOCKET.

    Raises ValueError for a state that is not one KEY=VALUE line, OSError when the socket
    is set but the datagram cannot be sent (BlockingIOError: the listener's queue is full).
    """
    for state in states:
        if "=" not in state or "\n" in state:
            raise ValueError(f"notify: a state is one KEY=VALUE line, got {state!r}")
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        # never block the loop that sends it: a listener whose queue is full (a stuck
        # systemd, a test that stopped reading) costs a lost datagram, not a stalled daemon
        sock.setblocking(False)
        sock.sendto("\n".join(states).encode(), address)
    return True


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of $WATCHDOG_USEC), or None when systemd
    expects none from this process ($WATCHDOG_USEC unset or invalid, $WATCHDOG_PID another pid)."""
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID")
    # Children of the daemon inherit the variables; only the named process is watched.
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None
