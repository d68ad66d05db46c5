"""Column spans of small design matrices, for leverage and for what a fit leaves over."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def column_basis(design: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """An orthonormal basis of ``design``'s column span, by QR with column pivoting (rank
    revealing: a column the others already give adds nothing, whatever its place)."""
    from scipy.linalg import qr  # here, not at import: the command line starts light

    scale = np.abs(design).max(axis=0)
    q, r, _ = qr(design / np.where(scale > 0, scale, 1.0), mode="economic", pivoting=True)
    diagonal = np.abs(np.diag(r))
    rank = int(np.count_nonzero(diagonal > 1e-9 * max(float(diagonal.max(initial=0)), 1e-300)))
    basis: npt.NDArray[np.float64] = q[:, :rank]
    return basis
