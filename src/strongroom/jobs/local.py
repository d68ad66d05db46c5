"""A job on a researcher's own machine: the same pipeline, layout and library as in the
enclave, on the project's dummy data (``strongroom jobs run ACTION --dummy``).

The dummy data is what ``GET /projects/{id}/dummy`` gives (``strongroom jobs dummy``): one
Parquet file per table and dataset definition, all synthetic. The outputs are written to the
repository's ``output/`` folder, so the researcher sees what their code makes; the plan of
:mod:`strongroom.sdc` outputs is listed (the enclave computes and checks those).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from strongroom.errors import Invalid, Refused
from strongroom.jobs import code as job_code
from strongroom.jobs import runner, sandbox
from strongroom.jobs.pipeline import FILE, PLANS, OutputKind, parse

LIMITS = sandbox.Limits(wall_seconds=1800.0, memory_bytes=4 << 30)


class LocalError(Exception):
    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass
class Report:
    ok: bool
    reason: str
    log: str
    plan: list[dict[str, Any]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    # declared outputs it should have written itself and did not (as a plain file within
    # the limits): in the enclave such a run fails the job
    unwritten: list[str] = field(default_factory=list)


def run(repo: Path, action: str, data: Path, *, sandboxed: bool = True) -> Report:
    """Run ``action`` (and what it needs) of ``repo``'s project.yaml on the dummy ``data``."""
    try:
        files = job_code.unpack(job_code.pack(repo))
        pipeline = parse(files[FILE].decode(), files)
        chain = pipeline.order(action)
    except (Invalid, UnicodeDecodeError) as problem:
        raise LocalError(getattr(problem, "reasons", [str(problem)])) from None
    tables = _tables(data)
    missing = sorted({i for a in chain for i in pipeline.actions[a].inputs} - set(tables))
    if missing:
        raise LocalError([f"the dummy data has no {name!r} (download it again with `strongroom "
                          f"jobs dummy PROJECT`, after defining {name!r} in the project)"
                          for name in missing])
    if sandboxed and sandbox.unavailable():
        raise LocalError([f"{sandbox.unavailable()}; or run with --no-sandboxed (your own "
                          "machine, dummy data)"])

    def write(name: str, path: Path) -> None:
        path.write_bytes(tables[name])

    with tempfile.TemporaryDirectory(prefix="strongroom-job-") as scratch:
        if os.geteuid() == 0:  # the sandbox runs as the jobs' own user: let it reach in
            os.chmod(scratch, 0o711)  # noqa: S103 (enter, not list)
        try:
            runs = runner.chain(pipeline, chain, files, Path(scratch), write, limits=LIMITS,
                                # its scratch's own name: two runs at once of one action
                                # (two terminals, two people) have groups of their own
                                name=f"strongroom-local-{Path(scratch).name}",
                                runs_in=runner.sandboxed if sandboxed else runner.unsandboxed)
        except Refused as refusal:
            raise LocalError([str(refusal)]) from None
    last = runs[-1]
    written = []
    if last.ending.ok and len(runs) == len(chain):  # the plan the enclave will hold it to
        plans = repo / PLANS
        plans.mkdir(exist_ok=True)
        (plans / f"{action}.json").write_text(json.dumps(last.plan, indent=1, sort_keys=True)
                                              + "\n")
        written.append(f"{PLANS}/{action}.json")
    for path, payload in last.files.items():
        target = repo.joinpath(*PurePosixPath(path).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
        written.append(path)
    planned = {item["output"] for item in last.plan}
    unwritten = [f"{name} ({declared.path})"
                 for name, declared in pipeline.actions[action].outputs.items()
                 if name not in planned and declared.kind is not OutputKind.INTERNAL
                 and declared.path not in last.files] if len(runs) == len(chain) else []
    return Report(last.ending.ok, last.ending.reason(), last.log(), last.plan, written,
                  unwritten)


def _tables(data: Path) -> dict[str, bytes]:
    """The dummy data's Parquet files by name, from a folder or the dummy zip."""
    if data.is_file() and zipfile.is_zipfile(data):
        with zipfile.ZipFile(data) as archive:
            return {PurePosixPath(n).stem: archive.read(n) for n in archive.namelist()
                    if n.endswith(".parquet") and "/" not in n}
    if not data.is_dir():
        raise LocalError([f"there is no dummy data at {data}: download it with `strongroom "
                          "jobs dummy PROJECT` (or give --data)"])
    return {p.stem: p.read_bytes() for p in sorted(data.glob("*.parquet"))}


