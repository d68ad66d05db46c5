"""The OpenDP side of a differentially private query: runs in the DP engine's own environment.

OpenDP's Polars API is compiled against one exact Polars release (``opendp[polars]==0.16.0``
needs ``polars==1.36.1``) and refuses plans from any other, while Strongroom itself moves with
Polars. So OpenDP lives in an environment of its own and this file runs there: as the fork
server (``python -I dp_engine.py --fork-server``), which imports Polars and OpenDP once and
forks each worker process. It imports nothing from Strongroom, only the standard library,
Polars and OpenDP. See :mod:`strongroom.privacy.dp_runtime` for the other end.

Protocol, over the worker's stdin and stdout, one request at a time: a request is a 4-byte
big-endian length and a JSON header, then an 8-byte length and an Arrow IPC stream (the
prepared columns, never written to disk); the answer is a 4-byte length and JSON. ``op`` is
``plan`` (build the measurement and report its noise scales; the frame is empty, so nothing
about the data can leak through an error) or ``release`` (the same measurement over the data).

Every query is its own OpenDP :class:`~opendp.context.Context` over a sequential compositor
whose privacy loss is the ε Strongroom has charged to the project's ledger; the compositor
refuses any measurement whose privacy map exceeds its share. Every query is pure ε-DP. The
noise scale is solved in closed form (for pure DP the loss is proportional to 1/scale) and
checked with OpenDP's own privacy map, instead of OpenDP's generic binary search (about 60
measurement builds, a second per query).
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
import struct
import sys
import warnings
from importlib.metadata import version
from typing import IO, Any, NoReturn

import polars as pl

# a public upper bound on the rows of any table the engine sees (integer sums are proven free
# of overflow against it: |value| ≤ 1e9 after scaling, so 1e9 rows stay within 64 bits)
MAX_ROWS = 1_000_000_000
PID = "pid"
VALUE = "v"
GROUP = "g"
_HEAD = struct.Struct(">I")
_BODY = struct.Struct(">Q")
WORKER_PID = struct.Struct(">Q")  # the fork server's answer: the worker's pid (0: none)
REAP_SECONDS = 10.0  # how often an idle fork server collects its workers that have ended
READY = b"R"  # the fork server's first word: its imports are done


def _opendp() -> Any:
    import opendp.prelude as dp  # type: ignore[import-not-found, unused-ignore]

    dp.enable_features("contrib")
    return dp


def _unit(dp: Any, header: dict[str, Any]) -> Any:
    """The privacy unit: one row per participant, or every row carrying the participant's id."""
    if header["unit"] == "rows":
        return dp.unit_of(contributions=1)
    return dp.unit_of(contributions=1, identifier=pl.col(PID))


def _aggregates(dp: Any, header: dict[str, Any]) -> list[list[pl.Expr]]:
    """The released expressions, one list per part (each part gets an even share of ε)."""
    kind = header["kind"]
    if kind == "count":
        return [[dp.len(signed=True)]]
    if kind in ("sum", "mean"):  # the mean is sum / count, post-processed by Strongroom
        lo, hi = (int(b) for b in header["bounds"])
        # values travel as 32-bit integers (half the bytes to move into OpenDP) and are summed
        # as 64-bit ones; OpenDP adds the .dp namespace to Polars expressions
        value: Any = pl.col(VALUE).cast(pl.Int64)
        total = value.dp.sum((lo, hi)).alias("sum")
        return [[total, dp.len(signed=True)] if kind == "mean" else [total]]
    if kind == "quantile":  # one part per quantile: each one's rank accuracy follows its ε
        candidates = [float(c) for c in header["candidates"]]
        column: Any = pl.col(VALUE)
        return [[column.dp.quantile(float(a), candidates).alias(f"q{i}")]
                for i, a in enumerate(header["quantiles"])]
    raise ValueError(f"unknown kind {kind!r}")


def _plans(dp: Any, context: Any, header: dict[str, Any]) -> list[Any]:
    """The OpenDP queries: person-level truncation where rows carry a pid, then aggregates.

    Truncations are written as OpenDP recognises them, preferring a group-by on the pid (a
    hash aggregation) to a window over it (ten times slower on millions of rows). Strongroom
    has already kept a random sample within each bound, so OpenDP's truncation, which proves
    the bound, keeps the rows it is given.
    """
    by_pid = header["unit"] != "rows"
    if header["kind"] == "histogram":
        query = context.query()
        keys = pl.LazyFrame({GROUP: pl.Series(range(int(header["keys"])), dtype=pl.Int32)})
        if by_pid:
            groups = int(header["max_groups"])
            if groups < int(header["keys"]):
                # dense ranks start at 1 and OpenDP counts them from 0: `<= m` keeps m groups
                # and OpenDP bounds them by m + 1 (with no truncation, by the number of keys)
                query = query.filter(pl.col(GROUP).rank("dense").over(PID) <= groups)
            query = query.group_by([PID, GROUP]).agg(pl.len().alias("rows"))
        return [query.group_by(GROUP).agg(dp.len(signed=True)).with_keys(keys)]
    plans = []
    for aggregates in _aggregates(dp, header):
        query = context.query()
        if by_pid:
            rows = int(header["max_rows"])
            if header["kind"] == "count" and rows == 1:  # participants with a matching row
                query = query.group_by([PID]).agg(pl.len().alias("rows"))
            else:
                query = query.filter(pl.int_range(pl.len()).over(PID) < rows)
        plans.append(query.select(aggregates))
    return plans


def _context(dp: Any, data: pl.LazyFrame, unit: Any, epsilon: float, parts: int) -> Any:
    """A context whose accountant is OpenDP's sequential composition of ``parts`` even shares.

    This is what :meth:`Context.compositor` builds, less its generic 60-step search for the
    shares (a tenth of a second per query): pure ε-DP composes additively, so each share is
    ε / parts, lowered until the accountant's own privacy map proves the whole ≤ ε.
    """
    metric, d_in = unit
    domain = dp.with_margin(dp.domain_of(data, infer=True),
                            dp.polars.Margin(max_length=MAX_ROWS))
    share = epsilon / parts
    for _ in range(60):
        accountant = dp.c.make_adaptive_composition(
            domain, metric, dp.max_divergence(), d_in=d_in, d_mids=[share] * parts)
        if float(accountant.map(d_in)) <= epsilon:
            return dp.Context(accountant=accountant, queryable=accountant(data), d_in=d_in,
                              d_mids=[share] * parts)
        share = math.nextafter(share * (1 - 1e-12), 0.0)
    raise ValueError("no split of ε composes within it")  # pragma: no cover


def _measurement(dp: Any, context: Any, query: Any, epsilon: float) -> Any:
    """The measurement at the smallest scale whose privacy loss OpenDP proves is ≤ ε."""
    accountant = context.accountant
    plan = query.polars_plan

    def make(scale: float) -> Any:
        return dp.m.make_private_lazyframe(accountant.input_domain, accountant.input_metric,
                                           accountant.output_measure, plan, global_scale=scale)

    unit_loss = float(make(1.0).map(context.d_in))
    if unit_loss == 0.0:
        raise ValueError("the query has no sensitivity: nothing about a participant is in it")
    scale = unit_loss / epsilon
    for _ in range(60):
        found = make(scale)
        if float(found.map(context.d_in)) <= epsilon:
            return found
        scale = math.nextafter(scale * (1 + 1e-12), math.inf)
    raise ValueError("no noise scale meets the privacy loss")  # pragma: no cover


def run(header: dict[str, Any], frame: pl.DataFrame) -> dict[str, Any]:
    """Build (``plan``) or build and release (``release``) one query; JSON-able answer."""
    dp = _opendp()
    epsilon, delta = float(header["epsilon"]), float(header.get("delta", 0.0))
    if delta > 0:
        raise ValueError("(ε, δ) queries are not offered: every query here is pure ε-DP")
    parts = len(_aggregates(dp, header)) if header["kind"] != "histogram" else 1
    context = _context(dp, frame.lazy(), _unit(dp, header), epsilon, parts)
    share = context.d_mids[0]
    measurements = [_measurement(dp, context, q, float(share))
                    for q in _plans(dp, context, header)]
    summary = [row for m in measurements
               for row in dp.summarize_polars_measurement(m, float(header["alpha"])).to_dicts()]
    answer: dict[str, Any] = {
        "ok": True,
        "epsilon": sum(float(m.map(context.d_in)) for m in measurements),
        "epsilon_each": float(share),
        "summary": [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                     for k, v in row.items()} for row in summary],
    }
    if header["op"] == "release":
        columns: dict[str, list[Any]] = {}
        for m in measurements:
            released = context(m).collect()
            columns.update({name: released[name].to_list() for name in released.columns})
        answer["columns"] = columns
    return answer


# -- the worker loop ---------------------------------------------------------------------

def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    data = stream.read(size)
    if not data:
        return None
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            raise EOFError("the request ended early")
        data += more
    return data


def _answer(out: IO[bytes], answer: dict[str, Any]) -> None:
    body = json.dumps(answer, allow_nan=False).encode()
    out.write(_HEAD.pack(len(body)) + body)
    out.flush()


def _failure(exc: BaseException, op: str) -> dict[str, Any]:
    """A failure's kind, and its message only when no data was involved (``plan``)."""
    message = str(exc).strip().splitlines()[-1:] if op == "plan" else []
    return {"ok": False, "error": type(exc).__name__, "message": message[0] if message else ""}


def serve(source: IO[bytes], out: IO[bytes]) -> None:
    while True:
        head = _read_exact(source, _HEAD.size)
        if head is None:
            return  # the parent closed the pipe: it has gone, so do we
        header = json.loads(_read_exact(source, _HEAD.unpack(head)[0]) or b"{}")
        size = _BODY.unpack(_read_exact(source, _BODY.size) or b"")[0]
        payload = _read_exact(source, size) if size else b""
        op = str(header.get("op"))
        try:
            if op == "ping":  # imports OpenDP (seconds): a warmed worker answers at once
                _opendp()
                answer: dict[str, Any] = {"ok": True, "opendp": version("opendp"),
                                          "polars": pl.__version__}
            else:
                frame = pl.read_ipc_stream(io.BytesIO(payload or b""))
                answer = run(header, frame)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # the answer says what failed; the worker keeps serving
            answer = _failure(exc, op)  # a Polars panic too (PyO3's, a BaseException)
        _answer(out, answer)


# -- the fork server ---------------------------------------------------------------------

def fork_server(control: socket.socket) -> None:
    """Fork a worker for each request on ``control`` (its stdin: a Unix socket), each
    serving the two pipe ends passed with the request; answer with the worker's pid and a
    pidfd of it. Polars and OpenDP are imported here once (about two seconds) and every
    worker starts with them in milliseconds, their pages shared.

    **Nothing is sampled here.** OpenDP draws its noise from a thread-local generator seeded
    on its first use (drbg's ``LocalCtrDrbg``): one seeded here would be copied into every
    worker, and they would all draw the same noise. Each worker seeds its own on its first
    draw (tests/unit/test_dp_answers.py checks two workers' noise differs). The BLAS
    libraries are kept to one thread (``OPENBLAS_NUM_THREADS``, set by the caller), so the
    only other thread forked over is jemalloc's, which prepares its own locks for a fork."""
    _opendp()
    control.sendall(READY)  # imported: each fork from now on takes milliseconds
    control.settimeout(REAP_SECONDS)
    while True:
        _reap()
        try:
            message, fds, _, _ = socket.recv_fds(control, 16, 2, socket.MSG_CMSG_CLOEXEC)
        except TimeoutError:
            continue
        if not message:
            return  # the parent closed its end: it has gone, so do we (workers run on)
        try:
            _fork(control, fds)
        finally:
            for fd in fds:
                os.close(fd)


def _fork(control: socket.socket, fds: list[int]) -> None:
    """One worker on ``fds``, answered with its pid and pidfd; pid 0 and no pidfd where
    none could be forked (a malformed request, a fork the system refused)."""
    try:
        if len(fds) != 2:
            raise OSError("a worker needs its two pipe ends")
        pid = os.fork()
    except OSError:
        control.sendall(WORKER_PID.pack(0))
        return
    if pid == 0:
        _worker(control, fds[0], fds[1])
    try:
        pidfd = os.pidfd_open(pid)  # before any reaping, so the pid cannot be another's
    except OSError:  # a kernel before 5.3, or a seccomp profile that refuses it
        os.kill(pid, 9)
        control.sendall(WORKER_PID.pack(0))
        return
    try:
        socket.send_fds(control, [WORKER_PID.pack(pid)], [pidfd])
    finally:
        os.close(pidfd)


def _reap() -> None:
    """Collect the workers that have ended (their parent is this process)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _worker(control: socket.socket, requests: int, answers: int) -> NoReturn:
    """A forked worker: its requests on stdin, its answers on stdout, as a started one."""
    code = 1
    try:
        control.detach()  # fd 0, replaced below: nothing of the fork server's stays open
        os.dup2(requests, 0)
        os.dup2(answers, 1)
        os.close(requests)
        os.close(answers)
        serve(sys.stdin.buffer, sys.stdout.buffer)
        code = 0
    finally:
        os._exit(code)


def main() -> None:
    warnings.simplefilter("ignore")  # OpenDP's FutureWarnings would only clutter stderr
    if sys.argv[1:] == ["--fork-server"]:
        fork_server(socket.socket(fileno=0))
    else:
        serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
