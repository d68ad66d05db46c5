"""Imported by every Python process in a job's sandbox, before the job's own code.

It reports the job's tries at the sandbox's walls (a network call, starting another program)
to the platform, through a pipe opened before the job started.
The walls hold without it (the sandbox has no network, and nothing to read); this is how a
try becomes an alert. An audit hook cannot be removed once added, and a report that cannot
be written ends the process, so closing the pipe does not hide a try.
"""

import os
import sys

_FD = int(os.environ.get("STRONGROOM_MONITOR_FD", "-1"))
# read once, before the job's code runs (which could set it afterwards)
_NOTEBOOK = os.environ.get("STRONGROOM_NOTEBOOK") == "1"
_WATCHED = {
    "socket.connect": "network", "socket.bind": "network", "socket.sendto": "network",
    "socket.sendmsg": "network", "socket.getaddrinfo": "network",
    "socket.gethostbyname": "network", "socket.gethostbyaddr": "network",
    "os.exec": "program", "os.posix_spawn": "program", "os.spawn": "program",
    "os.system": "program", "subprocess.Popen": "program", "pty.spawn": "program",
}


# programs libraries start on their own: matplotlib lists fonts with fontconfig, and
# platform.processor() (IPython) asks uname
_HARMLESS = frozenset({"fc-list", "fc-match", "uname"})


def _hook(event: str, args: tuple[object, ...]) -> None:
    wall = _WATCHED.get(event)
    if wall is None:
        return
    if wall == "program" and (_kernel(args) or _harmless(event, args)):
        return
    what = repr(args)[:200].replace("\n", " ")
    line = f"{wall}\t{event}\t{what}\n".encode("utf-8", "replace")
    try:
        os.write(_FD, line)
    except OSError:
        os._exit(86)  # the report could not be made: the process ends rather than hide it


def _harmless(event: str, args: tuple[object, ...]) -> bool:
    return event == "subprocess.Popen" and bool(args) and str(args[0]) in _HARMLESS


def _kernel(args: tuple[object, ...]) -> bool:
    """A notebook's kernel, started by the runner (nbclient) with this interpreter."""
    if not _NOTEBOOK or len(args) < 2 or not isinstance(args[1], (list, tuple)):
        return False
    argv = [str(a) for a in args[1]]
    return argv[:3] == [sys.executable, "-m", "ipykernel_launcher"] and len(argv) <= 6


if _FD >= 0:
    sys.addaudithook(_hook)
