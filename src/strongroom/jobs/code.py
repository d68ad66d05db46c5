"""A job's code as submitted: a zip of the researcher's repository, read with care.

Only plain files with plain relative names are taken (no links, no '..', no absolute paths),
within limits of size and number; anything else refuses the whole archive, naming each
problem. :func:`pack` makes the archive from a folder as the client and the CLI submit it.
"""

from __future__ import annotations

import hashlib
import io
import stat
import subprocess
import zipfile
from pathlib import Path, PurePosixPath

from strongroom.errors import Invalid
from strongroom.jobs.pipeline import FILE, OUTPUT_DIR, _relative

MAX_ARCHIVE = 20 << 20
MAX_UNPACKED = 50 << 20
MAX_FILES = 2000
# never packed: the researcher's own outputs, dummy data, environments, caches and IDE state
SKIPPED = frozenset({".git", OUTPUT_DIR, "dummy", ".venv", "venv", "__pycache__",
                     ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache", "node_modules",
                     ".Rproj.user"})  # RStudio's own state


def unpack(archive: bytes) -> dict[str, bytes]:
    """The files of a zip archive by path (Invalid, naming every problem, if any)."""
    if len(archive) > MAX_ARCHIVE:
        raise Invalid(f"the code archive is larger than {MAX_ARCHIVE >> 20} MiB; submit the "
                      "code only (data, outputs and environments stay out of it)")
    try:
        zipped = zipfile.ZipFile(io.BytesIO(archive))
        members = zipped.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise Invalid("the code is not a zip archive (the client and 'strongroom jobs submit' "
                      "make one from your repository)") from None
    problems: list[str] = []
    if len(members) > MAX_FILES:
        problems.append(f"the archive holds {len(members):,} entries; at most {MAX_FILES:,}")
    total = sum(m.file_size for m in members)
    if total > MAX_UNPACKED:
        problems.append(f"the archive unpacks to more than {MAX_UNPACKED >> 20} MiB")
    files: dict[str, bytes] = {}
    for member in members:
        if member.is_dir():
            continue
        name = member.filename
        mode = member.external_attr >> 16
        problem = _relative(name)
        if problem:
            problems.append(f"{name!r} {problem}")
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            problems.append(f"{name!r} is not a plain file (links and devices are refused)")
        elif name in files:
            problems.append(f"{name!r} is in the archive twice")
        elif not problems:
            try:
                files[name] = zipped.read(member)
            except (zipfile.BadZipFile, OSError, RuntimeError) as error:
                problems.append(f"{name!r} cannot be read: {error}")
    if not problems and FILE not in files:
        problems.append(f"the archive holds no {FILE} at its top")
    folders = {str(parent) for path in files for parent in PurePosixPath(path).parents}
    problems += [f"{path!r} is a file and a folder of other files at once" for path in files
                 if path in folders]
    problems += [f"{top!r} is where the job's {top} are put: the code may hold a folder "
                 f"{top}/ (it is hidden while the job runs), not a file" for top in
                 (OUTPUT_DIR, "inputs") if top in files]
    if problems:
        raise Invalid(problems)
    return files


def digests(files: dict[str, bytes]) -> dict[str, str]:
    return {path: hashlib.sha256(data).hexdigest() for path, data in sorted(files.items())}


def write(files: dict[str, bytes], folder: Path) -> None:
    """Write the files under ``folder`` (which the sandbox mounts read-only)."""
    for path, data in files.items():
        target = folder.joinpath(*PurePosixPath(path).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o444)


def pack(folder: Path) -> bytes:
    """A zip of the repository at ``folder``: the files git tracks, if it is a repository,
    else every file but outputs, dummy data, environments and caches."""
    paths = _tracked(folder)
    if paths is not None:  # the plans the dummy runs wrote, committed or not
        paths = sorted({*paths, *(p.relative_to(folder).as_posix()
                                  for p in (folder / "plans").glob("*.json") if p.is_file())})
    if paths is None:
        paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                       if p.is_file() and not p.is_symlink()
                       and not SKIPPED & set(p.relative_to(folder).parts[:-1]))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in paths:
            if PurePosixPath(path).parts[0] in SKIPPED:
                continue
            archive.write(folder / path, path)
    return buffer.getvalue()


def _tracked(folder: Path) -> list[str] | None:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=folder,  # noqa: S607
                                capture_output=True,
                                check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    paths = [p for p in listed.decode().split("\0") if p and (folder / p).is_file()]
    return sorted(paths) or None
