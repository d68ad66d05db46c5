"""Checkpoints: what is signed, the exported form, and the witness file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from strongroom.audit import Checkpoint, signing_key_from_secret
from strongroom.audit.checkpoints import append_witness, read_witness
from strongroom.audit.keys import key_id

KEY = signing_key_from_secret(bytes(range(32)))
OTHER = signing_key_from_secret(bytes(range(1, 33)))
AT = dt.datetime(2026, 4, 1, 12, 0, tzinfo=dt.UTC)
ROOT = bytes(range(32))


def test_a_signed_checkpoint_verifies_only_with_its_key_and_content() -> None:
    cp = Checkpoint.sign(KEY, 7, ROOT, AT)
    assert cp.verify(KEY.public_key())
    assert not cp.verify(OTHER.public_key())
    assert not Checkpoint(8, cp.root_hash, cp.at, cp.signature, cp.key_id).verify(
        KEY.public_key())
    assert not Checkpoint(7, bytes(32), cp.at, cp.signature, cp.key_id).verify(KEY.public_key())
    later = AT + dt.timedelta(microseconds=1)
    assert not Checkpoint(7, ROOT, later, cp.signature, cp.key_id).verify(KEY.public_key())
    assert not Checkpoint(7, ROOT, AT, cp.signature[:10], cp.key_id).verify(KEY.public_key())


def test_an_exported_checkpoint_verifies_offline_from_its_own_fields() -> None:
    cp = Checkpoint.sign(KEY, 7, ROOT, AT)
    exported = json.loads(json.dumps(cp.export(KEY.public_key())))
    # what an outside party does with nothing but the JSON and the cryptography library
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(exported["public_key"]))
    public.verify(bytes.fromhex(exported["signature"]), exported["signed_text"].encode())
    assert exported["signed_text"] == (
        f"strongroom-audit-checkpoint/1\n{key_id(public)}\n7\n{ROOT.hex()}\n"
        "2026-04-01T12:00:00.000000+00:00\n")
    assert exported["log_id"] == key_id(KEY.public_key())
    assert Checkpoint.from_export(exported) == cp


def test_malformed_exports_are_refused() -> None:
    good = Checkpoint.sign(KEY, 7, ROOT, AT).export(KEY.public_key())
    for bad in ({**good, "format": "x"}, {**good, "root_hash": "zz"}, {**good, "tree_size": -1},
                {k: v for k, v in good.items() if k != "signature"},
                {**good, "public_key": OTHER.public_key().public_bytes_raw().hex()},
                {**good, "timestamp": "2026-04-01T12:00:00"}):
        with pytest.raises(ValueError, match="not a Strongroom audit checkpoint"):
            Checkpoint.from_export(bad)


def test_the_witness_is_json_lines_and_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "checkpoints.jsonl"
    assert read_witness(path) == []
    cps = [Checkpoint.sign(KEY, n, ROOT, AT) for n in (1, 2)]
    for cp in cps:
        append_witness(path, cp, KEY.public_key())
    assert [Checkpoint.from_export(d) for d in read_witness(path)] == cps
    assert path.stat().st_mode & 0o777 == 0o600
    with path.open("a") as fh:
        fh.write('{"format": "strongroom-au')  # a crash mid-write
    assert len(read_witness(path)) == 2
    path.write_text(path.read_text().replace('{"format": "strongroom-au', "garbage\n"))
    assert read_witness(path)[-1] == {"unreadable": 3}
