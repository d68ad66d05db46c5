"""The decoy benchmark's smoke run: one decoy set, saved and compared with itself."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from benchmarks import decoy_speed


def test_one_decoy_set_is_timed_saved_and_compared(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "decoys.parquet"
    monkeypatch.setattr(sys, "argv", ["decoy_speed", "--seeds", "1", "--save", str(saved)])
    decoy_speed.main()
    monkeypatch.setattr(sys, "argv", ["decoy_speed", "--seeds", "1", "--compare", str(saved)])
    decoy_speed.main()
    said = capsys.readouterr().out
    assert "1 decoy sets of 200 (9 columns): CPU" in said
    assert said.strip().endswith("True")  # the same seed, the same decoys
