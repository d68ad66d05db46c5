"""Genotype files read in a child process, so a reader that crashes cannot take the caller down.

PLINK files are read by C++ (pgenlib) and Rust (bed-reader); layouts.py checks every length
before they run, but a damaged record can still reach code that was never written for hostile
bytes (and BGEN's reference reader, in C, crashed on files whose lengths lie: bgen.py replaced
it). Here the file is opened and read by a child process
(forked from a clean server process that has the readers imported, so starting one is cheap);
dosages come back packed, with their sums, over a pipe, never through a file. If the child dies
(a segmentation fault, an abort, the kernel's OOM killer) the caller gets a
:class:`GenotypeFileError` naming the file and where it stopped, and nothing half-read is used.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from strongroom.errors import is_failure
from strongroom.genomics import encoding
from strongroom.genomics.formats import Dosages, GenotypeFile, GenotypeFileError, open_direct

_JOIN_SECONDS = 10
# the longest a child may take to answer (open and walk a file, or read one chunk) before it is
# taken for hung (a reader in an endless loop) and killed; a UK Biobank chromosome's BGEN walk
# and a 500,000-sample chunk take well under a minute
ANSWER_SECONDS = 900.0
_context: Any = None


def _children() -> Any:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["strongroom.genomics.isolated"])
    return _context


class Isolated(GenotypeFile):
    """A genotype file opened and read by a child process; see the module's docstring."""

    def __init__(self, path: Path):
        self._name = path.name
        self._conn, theirs = multiprocessing.Pipe()
        self._child = _children().Process(target=_serve, args=(theirs, str(path)), daemon=True,
                                          name=f"strongroom-genotypes-{path.name}")
        self._child.start()
        theirs.close()
        self._where = "opening it"
        self._streaming = False  # a stream left unfinished: the child cannot hear a "stop"
        try:
            _, self.kind, samples, variants, files = self._answer()
        except BaseException:
            self.close()
            raise
        self._files = [Path(f) for f in files]
        super().__init__(path, samples, variants)

    def read(self, start: int, stop: int) -> Dosages:
        self._where = f"variants {start + 1:,}-{stop:,}"
        self._ask(("read", start, stop))
        dosages: Dosages = self._answer()[1]
        return dosages

    def packed(self, size: int) -> Iterator[encoding.Packed]:
        self._ask(("packed", size))
        self._streaming = True
        self._where = "the first variants"
        while True:
            answer = self._answer()
            if answer[0] == "end":
                self._streaming = False
                return
            part: encoding.Packed = answer[1]
            self._where = f"variants after {part.first + part.count:,}"
            yield part

    def files(self) -> list[Path]:
        return list(self._files)

    def close(self) -> None:
        if self._streaming:
            self._child.kill()
        if self._child.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._child.join(_JOIN_SECONDS)
        if self._child.is_alive():
            self._child.kill()
            self._child.join()
        self._conn.close()

    def _ask(self, request: tuple[Any, ...]) -> None:
        try:
            self._conn.send(request)
        except OSError:  # the child is gone: say how
            self._answer()

    def _answer(self) -> tuple[Any, ...]:
        try:
            if not self._conn.poll(ANSWER_SECONDS):
                self._child.kill()
                self._streaming = False
                raise GenotypeFileError(
                    f"{self._name}: the {self._reader} gave no answer in "
                    f"{ANSWER_SECONDS:g} s while {self._where} and was stopped: the file is "
                    "damaged or not what its name says. Nothing was stored")
            answer: tuple[Any, ...] = self._conn.recv()
        except (EOFError, OSError):
            self._child.join(_JOIN_SECONDS)
            raise GenotypeFileError(
                f"{self._name}: the {self._reader} stopped ({_how(self._child.exitcode)}) "
                f"while {self._where}: the file is damaged or not what its name says. "
                "Nothing was stored; check it with plink2 --validate (or bgenix) and write "
                "it again") from None
        if answer[0] == "refused":
            raise GenotypeFileError(answer[1])
        return answer

    @property
    def _reader(self) -> str:
        suffix = Path(self._name).suffix.lower()
        return {".bed": "PLINK 1 reader (bed-reader)", ".pgen": "PLINK 2 reader (pgenlib)",
                ".bgen": "BGEN reader"}.get(suffix, "genotype reader")


def _how(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _identity(files: list[Path]) -> list[tuple[int, int, int, int, int]]:
    """What tells a file from its replacement or a rewrite: device, inode, size, times."""
    found = []
    for f in files:
        st = os.stat(f)
        found.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return found


def _unchanged(source: GenotypeFile, checked: list[tuple[int, int, int, int, int]]) -> None:
    if _identity(source.files()) != checked:
        raise GenotypeFileError(
            f"{source.path.name} (or a file of its set) was replaced or changed while it was "
            "read: what was checked is not what was read. Nothing was stored; ingest it again "
            "once nothing is writing to it")


def _serve(conn: multiprocessing.connection.Connection, path: str) -> None:
    """The child: open the file, then answer reads until told to stop (``None``)."""
    try:
        source = open_direct(Path(path))
    except GenotypeFileError as exc:
        conn.send(("refused", str(exc)))
        return
    except BaseException as exc:  # a reader's own error type: still a refusal, with its words
        if not is_failure(exc):
            raise
        conn.send(("refused", f"{Path(path).name} cannot be read ({type(exc).__name__}: "
                              f"{exc}); check it with plink2 --validate"))
        return
    with source:
        # the files as checked: a file replaced or rewritten while it is read is refused
        checked = _identity(source.files())
        conn.send(("opened", source.kind, source.samples, source.variants,
                   [str(f) for f in source.files()]))
        while (request := conn.recv()) is not None:
            try:
                if request[0] == "read":
                    dosages = np.asfortranarray(source.read(*request[1:]))
                    _unchanged(source, checked)
                    conn.send(("dosages", dosages))
                else:
                    for part in source.packed(request[1]):
                        _unchanged(source, checked)
                        conn.send(("packed", part))
                    conn.send(("end",))
            except GenotypeFileError as exc:
                conn.send(("refused", str(exc)))
            except BaseException as exc:
                if not is_failure(exc):
                    raise
                conn.send(("refused", f"{Path(path).name} cannot be read ({type(exc).__name__}:"
                                      f" {exc}); check it with plink2 --validate"))
