from __future__ import annotations

import base64
from pathlib import Path

import pytest

from strongroom.cohort import crypto
from strongroom.cohort.crypto import DecryptionError, MasterKey, decrypt, encrypt


@pytest.fixture
def key() -> MasterKey:
    return MasterKey.generate()


def test_round_trip(key: MasterKey) -> None:
    data = b"participant 1000017 bmi 27.3817" * 1000
    sealed = encrypt(data, key, "ctx")
    assert data[:20] not in sealed
    assert decrypt(sealed, key, "ctx") == data


def test_empty_payload_round_trips(key: MasterKey) -> None:
    assert decrypt(encrypt(b"", key, "ctx"), key, "ctx") == b""


def test_wrong_key_is_refused(key: MasterKey) -> None:
    sealed = encrypt(b"secret", key, "ctx")
    with pytest.raises(DecryptionError, match="not the key given"):
        decrypt(sealed, MasterKey.generate(), "ctx")


def test_wrong_context_is_refused(key: MasterKey) -> None:
    sealed = encrypt(b"secret", key, "store/v1/participants")
    with pytest.raises(DecryptionError, match="belongs to"):
        decrypt(sealed, key, "store/v1/diagnoses")


@pytest.fixture
def multi_segment(monkeypatch: pytest.MonkeyPatch, key: MasterKey) -> tuple[bytes, bytes]:
    monkeypatch.setattr(crypto, "SEGMENT", 64)
    data = bytes(range(256)) * 2  # 8 segments
    return data, encrypt(data, key, "ctx")


def test_segments_round_trip(multi_segment: tuple[bytes, bytes], key: MasterKey) -> None:
    data, sealed = multi_segment
    assert decrypt(sealed, key, "ctx") == data


@pytest.mark.parametrize("attack", ["flip", "truncate", "drop-last", "swap", "append"])
def test_tampering_is_detected(
    multi_segment: tuple[bytes, bytes], key: MasterKey, attack: str
) -> None:
    _, sealed = multi_segment
    header_end = len(crypto.MAGIC) + 4 + int.from_bytes(sealed[len(crypto.MAGIC):][:4], "big")
    body = sealed[header_end:]
    seg = 4 + 64 + 16
    segments = [body[i:i + seg] for i in range(0, len(body), seg)]
    if attack == "flip":
        tampered = bytearray(sealed)
        tampered[-5] ^= 1
        blob = bytes(tampered)
    elif attack == "truncate":
        blob = sealed[:-3]
    elif attack == "drop-last":
        blob = sealed[:header_end] + b"".join(segments[:-1])
    elif attack == "swap":
        blob = sealed[:header_end] + b"".join([segments[1], segments[0], *segments[2:]])
    else:
        blob = sealed + segments[0]
    with pytest.raises(DecryptionError):
        decrypt(blob, key, "ctx")


def test_key_file_is_private_and_never_overwritten(tmp_path: Path, key: MasterKey) -> None:
    path = tmp_path / "k" / "master.key"
    key.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert MasterKey.load(path) == key
    with pytest.raises(FileExistsError):
        key.save(path)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o666])
def test_a_key_file_others_can_read_or_write_is_refused(tmp_path: Path, key: MasterKey,
                                                        mode: int) -> None:
    path = tmp_path / "master.key"
    key.save(path)
    path.chmod(mode)
    with pytest.raises(ValueError, match="chmod 600") as refused:
        MasterKey.load(path)
    assert key.secret.hex() not in str(refused.value)
    path.chmod(0o600)
    assert MasterKey.load(path).secret == key.secret


def test_a_directory_given_as_the_key_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is a directory, not a master key file"):
        MasterKey.load(tmp_path)


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch, key: MasterKey) -> None:
    monkeypatch.setenv(crypto.ENV_KEY, base64.b64encode(key.secret).decode())
    assert MasterKey.from_env() == key
    monkeypatch.setenv(crypto.ENV_KEY, "not base64!")
    with pytest.raises(ValueError, match="STRONGROOM_MASTER_KEY"):
        MasterKey.from_env()


def test_repr_hides_the_secret(key: MasterKey) -> None:
    assert base64.b64encode(key.secret).decode() not in repr(key)
    assert key.secret.hex() not in repr(key)


def test_leak_search_finds_what_it_looks_for() -> None:
    """The plaintext-at-rest tests rely on this search: it must find real leaks."""
    import struct

    from tests.leaks import binary_leaks, text_leaks

    blob = b'{"eid":1000017,"bmi":-27.3817,"when":"2011-05-17T00:00"}' + struct.pack("<d", 22.5)
    assert text_leaks(blob, [1000017, 27.3817, "2011-05-17", 1000025]) == [
        "1000017", "2011-05-17", "27.3817"]
    assert text_leaks(b"ab1000017cd", [1000017]) == []
    assert binary_leaks(blob, [7], [22.5, 1.0]) == ["double 22.5"]


def _sealed_file(tmp_path: Path, blob: bytes, key: MasterKey,
                 context: str = "ctx") -> crypto.SealedFile:
    path = tmp_path / "sealed.enc"
    path.write_bytes(blob)
    return crypto.SealedFile(path, key, context)


def test_a_sealed_file_reads_as_decrypt_gives_it_a_segment_at_a_time(
    multi_segment: tuple[bytes, bytes], key: MasterKey, tmp_path: Path
) -> None:
    data, sealed = multi_segment
    with _sealed_file(tmp_path, sealed, key) as plain:
        assert plain.size == len(data) and plain.seekable()
        assert plain.read() == data
        for start, n in [(0, 1), (63, 2), (64, 64), (5, 300), (500, 100), (511, 1), (512, 9)]:
            plain.seek(start)
            assert plain.read(n) == data[start:start + n]
            assert plain.tell() == min(start + n, len(data)) or start >= len(data)
        plain.seek(-10, 2)
        assert plain.read() == data[-10:]
        assert len(plain._cached) <= 2  # what it holds: two segments at most
    with _sealed_file(tmp_path, encrypt(b"", key, "ctx"), key) as empty:
        assert empty.size == 0 and empty.read() == b""


def test_a_sealed_file_refuses_what_decrypt_refuses(key: MasterKey, tmp_path: Path) -> None:
    sealed = encrypt(b"secret", key, "store/v1/participants")
    with pytest.raises(DecryptionError, match="not the key given"):
        _sealed_file(tmp_path, sealed, MasterKey.generate(), "store/v1/participants")
    with pytest.raises(DecryptionError, match="belongs to"):
        _sealed_file(tmp_path, sealed, key, "store/v1/diagnoses")
    with pytest.raises(DecryptionError, match="bad magic"):
        _sealed_file(tmp_path, b"PAR1" + sealed, key, "store/v1/participants")


@pytest.mark.parametrize("attack", ["flip", "truncate", "drop-last", "swap", "append"])
def test_a_sealed_file_detects_tampering_before_it_gives_a_tampered_byte(
    multi_segment: tuple[bytes, bytes], key: MasterKey, attack: str, tmp_path: Path
) -> None:
    _, sealed = multi_segment
    header_end = len(crypto.MAGIC) + 4 + int.from_bytes(sealed[len(crypto.MAGIC):][:4], "big")
    seg = 4 + 64 + 16
    segments = [sealed[header_end:][i:i + seg] for i in range(0, len(sealed) - header_end, seg)]
    blob = {"flip": sealed[:header_end + 10] + bytes([sealed[header_end + 10] ^ 1])
                    + sealed[header_end + 11:],
            "truncate": sealed[:-3],
            "drop-last": sealed[:header_end] + b"".join(segments[:-1]),
            "swap": sealed[:header_end] + b"".join([segments[1], segments[0], *segments[2:]]),
            "append": sealed + segments[0]}[attack]
    with pytest.raises(DecryptionError):  # at the open (the last segment) or at the read
        _sealed_file(tmp_path, blob, key).read()
