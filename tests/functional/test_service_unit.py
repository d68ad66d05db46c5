"""The systemd unit in docs/how-to/operate.md survives a key rotation (issue 53, item 5).

The server is started as the documented unit starts it, with the unit's own environment (read
from the document, its paths moved under a temporary directory), the master key rotated as
the document says, and the server started again with the same environment, unedited: it
opens. A unit still setting STRONGROOM_KEY_FILE (the earlier document's) is refused with what
to change."""

from __future__ import annotations

import os
import re
import shlex
import ssl
import subprocess
import sys
from pathlib import Path

import httpx

from tests.functional.test_server import free_port, self_signed, wait_until_up

REPO = Path(__file__).resolve().parents[2]
OPERATE = REPO / "docs" / "how-to" / "operate.md"
STRONGROOM = Path(sys.executable).parent / "strongroom"


def unit() -> tuple[dict[str, str], list[str]]:
    """The documented unit's Environment= settings and its ExecStart command line."""
    text = OPERATE.read_text()
    block = next(b for b in re.findall(r"```ini\n(.*?)```", text, re.S) if "[Service]" in b)
    block = block.replace("\\\n", " ")
    env = dict(line.split("=", 2)[1:] for line in block.splitlines()
               if line.startswith("Environment="))
    start = next(line.split("=", 1)[1] for line in block.splitlines()
                 if line.startswith("ExecStart="))
    return env, shlex.split(start)


def moved(value: str, tmp: Path) -> str:
    """A documented path, under the test's directory instead."""
    return (value.replace("/opt/strongroom/bin/strongroom", str(STRONGROOM))
            .replace("/srv/strongroom", str(tmp / "srv"))
            .replace("/etc/strongroom", str(tmp / "etc")))


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)


def start_and_stop(command: list[str], env: dict[str, str], tmp: Path, ca: Path,
                   port: int) -> None:
    """Start the server as the unit would, wait until it is ready, stop it as systemd does."""
    log = tmp / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"https://127.0.0.1:{port}"
        wait_until_up(url, ca, process, log)
        ready = httpx.get(f"{url}/health/ready", timeout=10,
                          verify=ssl.create_default_context(cafile=str(ca)))
        assert ready.status_code == 200, ready.text
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_rotation_needs_no_edit_of_the_documented_unit(tmp_path: Path) -> None:
    documented, exec_start = unit()
    assert "STRONGROOM_KEY_FILE" not in documented  # the keyring names the key
    (tmp_path / "etc").mkdir(mode=0o700)
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("STRONGROOM_") or k == "STRONGROOM_TEST_DATABASE_URL"}
    service = {**base, **{k: moved(v, tmp_path) for k, v in documented.items()}}
    key = tmp_path / "etc" / "master.key"
    made = run([str(STRONGROOM), "init", str(tmp_path / "srv"), "--key-file", str(key)], base)
    assert made.returncode == 0, made.stderr
    certificate, private_key = self_signed(tmp_path / "etc")
    (tmp_path / "etc" / "tls.pem").write_bytes(certificate.read_bytes())
    (tmp_path / "etc" / "tls.key").write_bytes(private_key.read_bytes())
    (tmp_path / "etc" / "tls.key").chmod(0o600)
    port = free_port()
    command = [moved(arg, tmp_path) for arg in exec_start]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    start_and_stop(command, service, tmp_path, certificate, port)

    # the rotation as the document gives it, run as the service's user with its environment
    rotated = run([str(STRONGROOM), "keys", "rotate", "--to",
                   f"file:{tmp_path / 'etc' / 'master-2.key'}", "--create", "--operator",
                   "Ada Operator", "--reason", "CHG-9 yearly rotation"], service)
    assert rotated.returncode == 0, rotated.stderr
    assert "warning" not in rotated.stderr
    start_and_stop(command, service, tmp_path, certificate, port)  # the same unit: it opens

    # the earlier document's unit named the key file over the keyring: refused, saying why
    stale = {**service, "STRONGROOM_KEY_FILE": str(key)}
    refused = run([str(STRONGROOM), "cohort", "info"], stale)
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 1, said
    assert "Remove STRONGROOM_KEY_FILE from the environment" in said and "rotated" in said
