"""`make test` puts the tests' temporary files on the RAM file system only where it has room,
and only in a folder that is this user's own (tests/tmp_dir.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.tmp_dir import folder_for_tests


def test_a_roomy_ram_file_system_gets_a_private_folder(tmp_path: Path) -> None:
    folder = folder_for_tests(ram=tmp_path, room=1)
    assert folder == tmp_path / f"strongroom-tests-{os.getuid()}"
    assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o700


def test_without_room_or_without_the_file_system_the_usual_folder(tmp_path: Path) -> None:
    usual = Path(tempfile.gettempdir())
    assert folder_for_tests(ram=tmp_path, room=2**62) == usual
    assert folder_for_tests(ram=tmp_path / "absent", room=1) == usual
    assert not list(tmp_path.iterdir())  # nothing made where it was not used


def test_a_planted_link_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ram = tmp_path / "ram"
    ram.mkdir()
    (ram / f"strongroom-tests-{os.getuid()}").symlink_to(elsewhere)
    assert folder_for_tests(ram=ram, room=1) == Path(tempfile.gettempdir())
