"""`strongroom upgrade` and `strongroom store recover` refuse while anything has the store open
(issue 53).

Every open store (``Store.open``, and so ``Platform.open``, the server and every command) holds
the data directory's in-use lock (``.in-use``) shared from open until close; an upgrade and a
recovery take it exclusively, without waiting. With another process holding the store open (a
child that opens it and waits, or a real `strongroom serve`), each refuses, exit 1, saying what
holds it and what to run, and changes nothing: every file of the data directory is byte for
byte what it was (the database and its write-ahead log included), no file is made, no audit
event recorded. Once that process has gone, the same command goes through. Also: close and a
failed open release the lock, an open is refused (not kept waiting) while an upgrade or a
recovery holds it, and nothing in one process deadlocks: the upgrade command's own raw store,
then its open, and a store this process has open passed to ``recover`` (its own shared lock
converted for the call and taken back after).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

import strongroom.platform  # noqa: F401  (every room's tables on Base.metadata)
from strongroom import migrations
from strongroom.cli import app
from strongroom.cohort import recovery
from strongroom.cohort.store import IN_USE, Store, StoreError, init_store, source_for
from strongroom.cohort.validate import validate
from strongroom.db import Base, make_engine
from strongroom.errors import Invalid
from strongroom.platform import Platform
from tests.conftest import small_cohort
from tests.integration.test_upgrade_history import Unpacked, unpack

REPO = Path(__file__).resolve().parents[2]
OPERATOR = ["--operator", "Lock Test", "--reason", "CHG-53 in-use lock"]
ARCHIVE = "2ca71af-sqlite.tar.gz"  # a release's store stamped 0014, the last before 0015

# A process with the store open: it opens it (as the release the store is at, when told that
# release's head revision: this code's open would call the store older and refuse), says so,
# and keeps it open until its stdin is closed.
HOLDER = r'''
import sys
from pathlib import Path

from strongroom import migrations

root, key, head, how = sys.argv[1:5]
if head != "-":  # the release whose schema the store is at, running
    migrations.head = lambda: head
if how == "platform":
    from strongroom.platform import Platform
    opened = Platform.open(Path(root), Path(key))
else:
    from strongroom.cohort.store import Store
    opened = Store.open(Path(root), Path(key))
print("open", flush=True)
sys.stdin.read()
opened.close()
'''


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STRONGROOM_MASTER_KEY", "STRONGROOM_KEY_FILE", "STRONGROOM_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    env.pop("STRONGROOM_MASTER_KEY", None)
    return env


@contextlib.contextmanager
def held_open(root: Path, key: Path, *, head: str | None = None,
              how: str = "store") -> Iterator[None]:
    """Another process with the store at ``root`` open for the block."""
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(root), str(key), head or "-",
                           how], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO) as child:
        assert child.stdin is not None and child.stdout is not None
        assert child.stderr is not None
        try:
            ready, _, _ = select.select([child.stdout], [], [], 120)
            line = child.stdout.readline() if ready else ""
            if line != "open\n":
                child.kill()
                pytest.fail(f"the holder did not open the store: {child.stderr.read()[-3000:]}")
            yield
        finally:
            child.stdin.close()
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        assert child.returncode == 0, child.stderr.read()[-3000:]


def in_use(root: Path) -> bool:
    """Whether anything holds the in-use lock (asked by a file description of our own, as
    another process would)."""
    with open(root / IN_USE, "rb") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def files(root: Path) -> dict[str, str]:
    """Every file of the data directory, by content: the database, its write-ahead log and the
    locks' files included."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, list(args))
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    return done.exit_code, done.output


def flat(said: str) -> str:
    """The output without its whitespace (the console wraps long paths)."""
    return "".join(said.split())


def refused_as_in_use(code: int, said: str, root: Path, command: str) -> None:
    assert code == 1, said
    assert "Traceback" not in said
    assert "is open in another process" in " ".join(said.split()), said
    assert flat("a running `strongroom serve`") in flat(said)
    assert flat(f"Nothing was changed. Stop it, then run `strongroom {command} -d {root} "
                f"--operator NAME --reason TEXT` again.") in flat(said), said


def events(root: Path, key: Path, kind: str) -> int:
    with Platform.open(root, key) as platform:
        return sum(e.type == kind for e in platform.audit.entries())


@pytest.fixture
def made(tmp_path: Path) -> tuple[Path, Path]:
    """A store at this release's schema with two cohort versions, closed."""
    root, key = tmp_path / "data", tmp_path / "keys" / "master.key"
    with init_store(root, key_file=key) as store:
        cohort = validate(small_cohort(), store.dictionary, "small")
        store.write_version(cohort)
        store.write_version(cohort.__class__(cohort.participants.head(2), cohort.events))
    return root, key


# -- another process has the store open --------------------------------------------------------

def test_an_upgrade_is_refused_while_another_process_has_the_store_open(
        tmp_path: Path) -> None:
    """The release before, still running beside the new one's `strongroom upgrade`."""
    found: Unpacked = unpack(ARCHIVE, tmp_path, None)
    engine = make_engine(found.url)
    try:
        was = migrations.state(engine)
    finally:
        engine.dispose()
    assert was.schema is migrations.Schema.OLDER and was.revision is not None
    args = ["-d", str(found.root), "--key-file", str(found.key)]
    with held_open(found.root, found.key, head=was.revision):
        assert in_use(found.root)
        before = files(found.root)
        code, said = run("upgrade", *args, *OPERATOR)
        refused_as_in_use(code, said, found.root, "upgrade")
        assert files(found.root) == before  # not a byte, not a file
    engine = make_engine(found.url)
    try:
        assert migrations.state(engine).revision == was.revision
    finally:
        engine.dispose()
    code, said = run("upgrade", *args, *OPERATOR)  # the other process has gone
    assert code == 0, said
    assert "upgraded the metadata database" in said
    assert events(found.root, found.key, "store.upgraded") == 1  # the refusal recorded none


def test_a_recovery_is_refused_while_another_process_has_the_store_open(
        made: tuple[Path, Path]) -> None:
    """The database deleted under a store still open: `store recover` waits for it to close."""
    root, key = made
    args = ["-d", str(root), "--key-file", str(key)]
    with held_open(root, key):
        for path in root.glob("metadata.db*"):
            path.unlink()
        before = files(root)
        code, said = run("store", "recover", *args, *OPERATOR)
        refused_as_in_use(code, said, root, "store recover")
        assert files(root) == before  # no database made, nothing moved to quarantine
        assert not (root / "metadata.db").exists() and not (root / "quarantine").exists()
    code, said = run("store", "recover", *args, *OPERATOR)
    assert code == 0, said
    assert flat(said).count("registeredversion") == 2
    assert events(root, key, "store.recovered") >= 1
    with Store.open(root, key) as store:
        assert len(store.versions()) == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(root: Path, key: Path) -> Iterator[None]:
    """`strongroom serve` on the store, answering, for the block; stopped as systemd does."""
    port = _free_port()
    log = root.parent / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "strongroom.cli", "serve", "-d", str(root), "--key-file",
             str(key), "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=_env(),
            cwd=REPO)
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"the server exited with {server.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer within 90 s:\n{log.read_text()}")
            time.sleep(0.1)
        yield
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode == 0, log.read_text()


def test_a_running_server_holds_off_upgrade_and_recover(made: tuple[Path, Path]) -> None:
    root, key = made
    args = ["-d", str(root), "--key-file", str(key)]
    with serving(root, key):
        assert in_use(root)
        refused_as_in_use(*run("upgrade", *args, *OPERATOR), root, "upgrade")
        refused_as_in_use(*run("store", "recover", *args, *OPERATOR), root, "store recover")
    assert not in_use(root)  # the server released it as it stopped
    assert events(root, key, "store.upgraded") == events(root, key, "store.recovered") == 0
    code, said = run("upgrade", *args, *OPERATOR)
    assert code == 0 and "already at this release's schema" in said, said
    code, said = run("store", "recover", *args, *OPERATOR)
    assert code == 0 and "nothing to recover" in said, said


# -- the lock's lifetime ------------------------------------------------------------------------

def test_the_lock_is_held_from_open_until_close(made: tuple[Path, Path]) -> None:
    root, key = made
    assert not in_use(root)
    store = Store.open(root, key)
    assert in_use(root)
    again = Store.open(root, key)  # shared: any number of open stores at once
    store.close()
    assert in_use(root)  # the other still has it
    again.close()
    assert not in_use(root)
    again.close()  # closing twice is harmless
    with Platform.open(root, key):
        assert in_use(root)
    assert not in_use(root)
    made_now = init_store(root.parent / "new", key_file=root.parent / "keys" / "new.key")
    assert in_use(made_now.root)  # a new store is an open one
    made_now.close()
    assert not in_use(made_now.root)
    assert (root / IN_USE).stat().st_mode & 0o777 == 0o600  # the owner's only, as the rest
    raw = Store(root, source_for(key))  # the repair commands' store holds nothing
    assert not in_use(root)
    raw.close()


def test_a_failed_open_releases_the_lock(made: tuple[Path, Path]) -> None:
    root, key = made
    (root / "watch.yaml").write_text("destinations: [unclosed\n")
    with pytest.raises(Invalid, match=r"watch\.yaml is not valid YAML"):  # after the store
        Platform.open(root, key)  # opened: the platform refused it, and closed it
    assert not in_use(root)
    (root / "watch.yaml").unlink()
    engine = make_engine(f"sqlite:///{root / 'metadata.db'}")
    try:
        with engine.begin() as con:  # as a newer release would leave it
            con.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed0099'"))
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match="f00dfeed0099"):
        Store.open(root, key)
    assert not in_use(root)


def test_an_open_is_refused_not_kept_waiting_while_an_upgrade_or_recovery_runs(
        made: tuple[Path, Path]) -> None:
    root, key = made
    with Store(root, source_for(key)) as raw, raw.exclusive("`strongroom store recover -d "
                                                            "DIR --operator NAME --reason "
                                                            "TEXT`"):
        before = files(root)
        started = time.monotonic()
        with pytest.raises(StoreError, match="being upgraded or recovered") as refused:
            Platform.open(root, key)
        assert time.monotonic() - started < 10
        assert "Nothing was changed" in str(refused.value)
        assert files(root) == before
    assert not in_use(root)
    with Platform.open(root, key):
        pass


# -- one process ---------------------------------------------------------------------------------

def test_one_process_neither_deadlocks_nor_lets_itself_through(
        made: tuple[Path, Path]) -> None:
    root, key = made
    args = ["-d", str(root), "--key-file", str(key)]
    with Platform.open(root, key):  # this process's own open counts as any other
        refused_as_in_use(*run("upgrade", *args, *OPERATOR), root, "upgrade")
        refused_as_in_use(*run("store", "recover", *args, *OPERATOR), root, "store recover")
    with Store.open(root, key) as opened:  # a store open here, recovered: its lock converts
        assert recovery.recover(opened) == []
        assert recovery.upgrade(opened, Base.metadata) == []
        assert in_use(root)  # and is shared again after
        other = Store.open(root, key)
        with pytest.raises(StoreError, match="is open in another process"):
            recovery.recover(opened)
        other.close()
        assert in_use(root)  # the refused conversion took its shared lock back
        with Store(root, source_for(key)) as raw, \
                pytest.raises(StoreError, match="is open in another process"):
            recovery.recover(raw)  # the repair commands' store: asked in its own description
    assert not in_use(root)
