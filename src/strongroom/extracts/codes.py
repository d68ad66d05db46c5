"""The fingerprint code: a keyed, collusion-resistant Tardos code with independent symbols.

A *position* is one cell of the cohort: (master participant ``eid``, storage column). Every
extract's recipient gets one binary symbol per position it receives; a symbol ``1`` moves the
cell up by one unit of recorded precision, ``0`` moves it down (``carriers.py``).

Tardos (2003), with Škorić et al.'s symmetric score (2008):

- Each position has a *bias* ``p`` drawn once, system-wide, from the arcsine density
  ``1 / (π √(p(1−p)))`` restricted to ``[t, 1−t]`` (the cutoff ``t``). Drawn as
  ``p = sin²(r)``, ``r`` uniform on ``[arcsin √t, π/2 − arcsin √t]``.
- Each recipient's symbol is ``x ~ Bernoulli(p)``, independently per position and recipient.
  There is no short bit string repeated across rows: every cell's symbol is its own draw, so
  a leaked subset of rows or columns still carries a code of its own length.

Both draws come from AES used as a pseudo-random function (``cryptography``; nothing hand
rolled): the 16-byte block ``eid (int64) ‖ column tag (uint64)`` is encrypted under a key and
its first four bytes read as a uniform ``uint32`` ``u``. The bias key is derived once from the
master key (HKDF-SHA256, its own ``info``); each extract's symbol key is derived from the master
key and the extract id, so keys are never stored and 1,000 recipients need 1,000 manifests, not
1,000 key files. AES-ECB over arrays of blocks makes this about 6 ms per million cells.

Exactness matters for the false-accusation bound (``accuse.py``): the bias is quantised to a
threshold ``P`` in units of 2⁻³², and the symbol is ``u < P``, so an innocent recipient's symbol
is *exactly* Bernoulli(``P / 2³²``) — the law the bound assumes — for a uniform ``u``.

The cutoff ``t = 0.01``: simulations of 5 colluders (interleaving, majority, minority and
"all ones" strategies) keep the symmetric score's guilty margin with ``t = 0.01``, while
``t = 0.1`` lets the minority-vote strategy escape; smaller ``t`` only lengthens the tails.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import cast

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from strongroom.cohort.crypto import MasterKey

CUTOFF = 0.01  # Tardos cutoff t: biases lie in [t, 1 − t]
SCALE = 2**32  # biases are thresholds in units of 2⁻³²
_BIAS_INFO = b"strongroom extracts: tardos biases v1"
_SYMBOL_INFO = b"strongroom extracts: recipient symbols v1\0"
_KEY_ID_PREFIX = b"strongroom extract key id\0"
_BAND_INFO = b"strongroom extracts: project band origins v1\0"
_CHUNK = 1 << 16  # blocks per AES call: 1 MiB in, 1 MiB out, reused (at 2 MiB per call
# or more, every call faulted fresh pages in: five times the CPU of the AES itself)


def _derive(master: MasterKey, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        master.secret)


def bias_key(master: MasterKey) -> bytes:
    """The system-wide key of the biases (the same for every extract)."""
    return _derive(master, _BIAS_INFO)


def indicator_key(master: MasterKey) -> bytes:
    """The HMAC key of decoy indicators, shared with threat-intelligence partners."""
    return _derive(master, b"strongroom extracts: stix indicators v1")


def recipient_key(master: MasterKey, extract_id: str) -> bytes:
    """The key of one extract's symbols, derived again whenever it is needed."""
    if not extract_id:
        raise ValueError("an extract id is needed to derive its key")
    return _derive(master, _SYMBOL_INFO + extract_id.encode())


def project_band_key(master: MasterKey, project_id: str) -> bytes:
    """The key that places one project's bands (``bands.py``): one per project, not per
    extract, so that a project's own extracts band alike and pooling them narrows nothing."""
    if not project_id:
        raise ValueError("a project id is needed to derive its band key")
    return _derive(master, _BAND_INFO + project_id.encode())


def key_id(key: bytes) -> str:
    """A public name for a derived key (kept in the manifest; reveals nothing of the key)."""
    return hashlib.sha256(_KEY_ID_PREFIX + key).hexdigest()[:16]


def column_tag(column: str) -> int:
    """A stable 64-bit name for a storage column, part of every position's PRF input."""
    digest = hashlib.sha256(b"strongroom column\0" + column.encode()).digest()
    return int.from_bytes(digest[:8], "little")


def column_tags(columns: Sequence[str]) -> np.ndarray:
    return np.array([column_tag(c) for c in columns], dtype=np.uint64)


def prf_input(eids: np.ndarray, tags: np.ndarray) -> bytes:
    """The PRF's input blocks for positions ``(eids[i], tags[i])``: build once, key many."""
    eids = np.asarray(eids, dtype=np.int64)
    blocks = np.empty((len(eids), 2), dtype="<u8")
    blocks[:, 0] = eids.view(np.uint64)
    blocks[:, 1] = np.broadcast_to(np.asarray(tags, dtype=np.uint64), eids.shape)
    return blocks.tobytes()


def prf_u32_of(key: bytes, blocks: bytes) -> np.ndarray:
    """One uniform ``uint32`` per 16-byte input block under ``key`` (AES as the PRF)."""
    # ECB is AES applied block by block: here a PRF on distinct inputs, not a data cipher
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
    # into a buffer of our own: ``update`` builds a new bytes object, 3× slower at 8 MB
    buffer = np.empty(len(blocks) + 15, dtype=np.uint8)  # update_into wants a block's slack
    written = encryptor.update_into(blocks, cast(bytearray, buffer))  # any writable buffer
    out: np.ndarray = buffer[:written].view("<u4")[::4]
    return out


def prf_u32(key: bytes, eids: np.ndarray, tags: np.ndarray) -> np.ndarray:
    """One uniform ``uint32`` per position ``(eids[i], tags[i])`` under ``key``."""
    eids = np.asarray(eids, dtype=np.int64)
    tags = np.broadcast_to(np.asarray(tags, dtype=np.uint64), eids.shape)
    out = np.empty(len(eids), dtype=np.uint32)
    for start in range(0, len(eids), _CHUNK):  # bounded memory for long inputs
        stop = min(start + _CHUNK, len(eids))
        out[start:stop] = prf_u32_of(key, prf_input(eids[start:stop], tags[start:stop]))
    return out


_R_LOW = math.asin(math.sqrt(CUTOFF))
_R_SPAN = math.pi / 2 - 2 * _R_LOW


def thresholds(key: bytes, eids: np.ndarray, tags: np.ndarray) -> np.ndarray:
    """Each position's bias as an integer threshold ``P`` (``p = P / 2³²``), ``uint32``."""
    u = prf_u32(key, eids, tags).astype(np.float64)
    r = _R_LOW + (u + 0.5) / SCALE * _R_SPAN
    p = np.sin(r) ** 2
    out: np.ndarray = np.clip(np.rint(p * SCALE), 1, SCALE - 1).astype(np.uint32)
    return out


def bias(threshold: np.ndarray) -> np.ndarray:
    """The exact Bernoulli parameter of a symbol drawn against ``threshold``."""
    return np.asarray(threshold, dtype=np.float64) / SCALE


def symbols(key: bytes, eids: np.ndarray, tags: np.ndarray,
            threshold: np.ndarray) -> np.ndarray:
    """One recipient's symbols (``bool``) at the positions: ``u < P``, exactly Bernoulli(p)."""
    return prf_u32(key, eids, tags) < np.asarray(threshold, dtype=np.uint32)


def symbols_of(key: bytes, blocks: bytes, threshold: np.ndarray) -> np.ndarray:
    """:func:`symbols` from prepared input blocks (:func:`prf_input`): for many keys."""
    return prf_u32_of(key, blocks) < threshold
