"""Run a Jupyter notebook headless, inside a job's sandbox (``python -m strongroom_notebook``).

The runner mounts this file as ``/job-lib/strongroom_notebook.py``. The notebook runs top to
bottom in a fresh kernel (nbclient), talking to it over Unix sockets (the sandbox has no
network, and needs none); a cell that raises fails the job, as a script would. Each cell's
text output is collected into ``output/<notebook>.md`` (its source, then what it printed),
which leaves, like any file of the job's own, only if the action declares it, and then only
through the output checkers. Figures leave as files the notebook saves and declares.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

TIMEOUT = 24 * 3600  # the sandbox's wall time is the limit that counts


def main(path: str) -> int:
    notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    manager = KernelManager(kernel_name="python3", transport="ipc",
                            ip=str(Path(tempfile.mkdtemp()) / "kernel"))
    # the kernel keeps the monitor's pipe (it reports the notebook's tries at the walls)
    monitor = int(os.environ.get("STRONGROOM_MONITOR_FD", "-1"))
    manager.start_kernel(cwd=".", pass_fds=(monitor,) if monitor >= 0 else ())
    client = NotebookClient(notebook, km=manager, timeout=TIMEOUT,
                            resources={"metadata": {"path": str(Path(path).parent or ".")}})
    failed = 0
    try:
        client.execute(cwd=".")
    except CellExecutionError as error:
        print(str(error)[-4000:], file=sys.stderr)
        failed = 1
    finally:
        _cells(notebook, Path("output") / (Path(path).stem + ".md"))
    return failed


def _cells(notebook: nbformat.NotebookNode, target: Path) -> None:
    lines: list[str] = []
    for n, cell in enumerate(notebook.cells, 1):
        if cell.cell_type != "code":
            continue
        lines += [f"## cell {n}", "", "```python", cell.source, "```", ""]
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain") or ""
            if out.get("output_type") == "error":
                text = f"{out.get('ename')}: {out.get('evalue')}"
            if text:
                lines += ["```", str(text).rstrip(), "```", ""]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
