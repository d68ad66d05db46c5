"""The system calls a job may not make: a seccomp filter bubblewrap loads before the job runs.

A Python or notebook job reads Parquet, computes and writes files; it has no use for the
kernel's debugging, mounting, namespace, key, BPF, module, clock or raw-I/O calls, and each
is a way to the host's kernel that namespaces alone do not close (``ptrace`` of the
sandbox's init, ``keyctl`` into the host's keyrings, ``perf_event_open`` and ``bpf`` into
the kernel's tracing, ``userfaultfd`` as an exploit's timer). Those calls are refused with
``SIGSYS`` (seccomp's *trap*: a process that does not catch it ends, the
:data:`~strongroom.jobs.sandbox.Wall.SYSCALL` wall, named on the dummy run). Not *kill*: the
kernel writes every seccomp kill to its log with the process's name and program path, both
the job's to choose, so a job could write decrypted bytes into the host's log a line at a
time (a red team did); a trap is not logged. So is any call of another architecture's ABI
(32-bit ``int 0x80``). A few calls libraries probe for and do without (``io_uring``, Linux
AIO, ``clone3``) fail as if the kernel lacked them. Budgets one count serves the whole host
for, outside any group of the job's (compiled BPF, AIO contexts, datagram buffers), are
closed to it: a red team spent each from a job, and the host's other programs, the next
sandbox among them, went without. The filter is compiled by libseccomp (through pyseccomp)
for this machine's architecture, once a process.
"""

from __future__ import annotations

import errno
import functools
import io
import os
import socket

import pyseccomp as seccomp

# refused with SIGSYS: no Python or notebook job needs them
KILLED = (
    # another process's memory and state
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # the file system's shape
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsmount", "fsconfig", "fspick", "mount_setattr", "open_by_handle_at",
    "name_to_handle_at", "quotactl", "quotactl_fd", "swapon", "swapoff",
    # namespaces (bubblewrap already forbids new user namespaces; these close the rest)
    "unshare", "setns",
    # the kernel's keyrings, BPF, tracing and page-fault handling
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "fanotify_init", "lookup_dcookie",
    # modules, kexec, the machine itself
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "acct", "syslog", "vhangup", "iopl", "ioperm", "uselib", "nfsservctl",
    "modify_ldt",
    # the clocks every process shares
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
)
# fail as absent: libraries probe for them and carry on without. Linux AIO's contexts are
# one count for the whole host (fs.aio-max-nr, root's too): a job's io_setup(65536) held
# every slot while it ran, and any program on the host needing one failed (a red team's)
ABSENT = ("io_uring_setup", "io_uring_enter", "io_uring_register", "clone3", "io_setup",
          "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents")
# Compiled BPF is one budget for the whole host (net.core.bpf_jit_limit), and this kind of
# kernel compiles every filter: a job that attached thousands of socket filters spent it, and
# the next sandbox's own seccomp filter could not be loaded (bwrap: "Unknown error 524"). The
# memory is the kernel's, outside the job's group. So a job attaches no filter of its own to
# a socket, and loads no seccomp filter of its own (it would stack on ours, from the same
# budget): refused as not permitted.
SOL_SOCKET = 1
SOCKET_FILTERS = (26, 50, 51, 52)  # SO_ATTACH_FILTER, _BPF, _REUSEPORT_CBPF, _REUSEPORT_EBPF
# A netlink socket's receive queue is kernel memory no group counts (v1 or v2): a red team
# held 1 GiB in 135 routing sockets of 8 MiB each from a job using 5 MiB, its replies never
# read, then 4 MiB a socket through the send buffer (an error reply copies the whole
# request into the receive queue). Netlink stays (ZeroMQ, a notebook's kernel, reads
# interfaces through it), but neither buffer may be raised past the host's default; the
# rest is a number of sockets (sandbox.OPEN_FILES a process), which sandbox.shared_budgets
# weighs.
SOCKET_BUFFERS = (7, 8, 32, 33)  # SO_SNDBUF, SO_RCVBUF, SO_SNDBUFFORCE, SO_RCVBUFFORCE
SECCOMP_SET_MODE_FILTER = 1
PR_SET_SECCOMP = 22
# IPv4 and IPv6 sockets of one type only: a stream (TCP, on loopback). Datagram buffers
# (UDP, ICMP's) come from a pool the whole host shares that the job's memory group does not
# count (a red team held 390 MiB of it from a job of 10 MiB); no job needs them (notebooks'
# kernels talk over local sockets). The type is the argument's low bits (its flags above).
STREAM, TYPE_BITS = socket.SOCK_STREAM, 0xF
# flags of clone(2) that would make a namespace (its first argument on x86-64 and arm64):
# NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
NAMESPACES = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
              0x40000000, 0x00000080)
# socket families a job may open: local, IPv4/6 streams for loopback (its network has nothing else),
# and netlink, which glibc's getifaddrs reads interfaces with (a notebook's kernel does)
FAMILIES = (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK)
TIOCSTI, TIOCLINUX = 0x5412, 0x541C  # typing into, and driving, a terminal
NETLINK_ROUTE = 0  # the one netlink protocol a job may open (interfaces, its own namespace's)


def _int(index: int, value: int) -> seccomp.Arg:
    """Argument ``index`` is ``value`` as the kernel reads an ``int``: its low 32 bits. A
    comparison of all 64 let a job set a high bit and pass (a red team attached 3,000 socket
    filters past a rule on ``SO_ATTACH_FILTER`` so)."""
    return seccomp.Arg(index, seccomp.MASKED_EQ, 0xFFFFFFFF, value)


@functools.cache
def program() -> bytes:
    """The filter as a compiled BPF program (bubblewrap's ``--seccomp`` reads it)."""
    f = seccomp.SyscallFilter(seccomp.ALLOW)
    f.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.TRAP)  # another ABI's calls: refused too
    for name in KILLED:
        f.add_rule(seccomp.TRAP, name)
    for name in ABSENT:
        f.add_rule(seccomp.ERRNO(errno.ENOSYS), name)
    for flag in NAMESPACES:
        f.add_rule(seccomp.TRAP, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    top = max(FAMILIES)
    for family in range(top):
        if family not in FAMILIES:
            f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket",
                       _int(0, family))
    # a family with bits above the int's: the kernel reads the low 32 (refused whatever they say)
    f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.GT, top))
    for family in (socket.AF_INET, socket.AF_INET6):
        for kind in range(TYPE_BITS + 1):
            if kind != STREAM:
                f.add_rule(seccomp.ERRNO(errno.ESOCKTNOSUPPORT), "socket",
                           _int(0, family), seccomp.Arg(1, seccomp.MASKED_EQ, TYPE_BITS, kind))
    for option in (*SOCKET_FILTERS, *SOCKET_BUFFERS):
        f.add_rule(seccomp.ERRNO(errno.EPERM), "setsockopt",
                   _int(1, SOL_SOCKET), _int(2, option))
    f.add_rule(seccomp.ERRNO(errno.EPERM), "seccomp",
               _int(0, SECCOMP_SET_MODE_FILTER))
    f.add_rule(seccomp.ERRNO(errno.EPERM), "prctl", _int(0, PR_SET_SECCOMP))
    # netlink but its routing protocol: the kernel's device events (uevents) are the host's
    f.add_rule(seccomp.ERRNO(errno.EPROTONOSUPPORT), "socket",
               _int(0, socket.AF_NETLINK),
               seccomp.Arg(2, seccomp.NE, NETLINK_ROUTE))
    for request in (TIOCSTI, TIOCLINUX):
        f.add_rule(seccomp.TRAP, "ioctl",
                   _int(1, request))
    buffer = io.BytesIO()
    with os.fdopen(os.memfd_create("seccomp"), "w+b") as out:
        f.export_bpf(out)
        out.seek(0)
        buffer.write(out.read())
    return buffer.getvalue()


def descriptor() -> int:
    """A new file descriptor holding :func:`program`, at its start, for one sandbox."""
    fd = os.memfd_create("strongroom-seccomp")
    os.write(fd, program())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
