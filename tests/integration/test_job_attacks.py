"""Hostile jobs: each tries one way out of the sandbox or through its outputs.

The guarantee: **nothing participant-level leaves a job but through the output check, and no
output a job wrote by itself is released without two output checkers.** Each test runs a real
job (bubblewrap, cgroups) against the real platform and reads the ground truth custodian-side:
the project's real pseudonyms and values, the store's files, the key. For each it asserts
that the attempt was refused, stopped or held with its reason, and that nothing a researcher
can see or download holds what the job went after.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from strongroom.errors import Invalid
from strongroom.jobs import sandbox
from strongroom.jobs.models import JobRow
from strongroom.jobs.service import DUMMY_FAILED, REAL_FAILED
from strongroom.outputs import requests
from strongroom.outputs.models import AnswerRow, OutputRow
from strongroom.outputs.verdicts import Verdict
from strongroom.watch.models import AlertRow
from tests.access_world import World
from tests.jobs_world import LIMITS, archive, build_jobs_world, pipeline, planned, run_job

pytestmark = pytest.mark.skipif(sandbox.unavailable() is not None,
                                reason=str(sandbox.unavailable()))

TEXT = "notes: {path: output/notes.txt, kind: text}"
TABLE = "table: {path: output/table.csv, kind: table}"
SECRET_ENV = "STRONGROOM_TEST_PLATFORM_SECRET"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    os.environ[SECRET_ENV] = "platform-secret-4f1c"  # in the platform's own environment
    found = build_jobs_world(tmp_path_factory.mktemp("jobs"))
    yield found
    found.platform.close()
    os.environ.pop(SECRET_ENV, None)


@pytest.fixture(autouse=True)
def limits(world: World) -> Iterator[None]:
    world.platform.jobs.limits = LIMITS
    yield
    world.platform.jobs.limits = LIMITS


def job(world: World, script: str, outputs: str = TEXT, plan: str = "[]",
        **more: str | bytes) -> JobRow:
    return run_job(world, {"project.yaml": pipeline(outputs), "analysis/study.py": script,
                           "plans/study.json": plan, **more})


def truth(world: World) -> tuple[set[str], list[float]]:
    """The project's real pseudonyms and BMI values, read custodian-side."""
    project = world.platform.jobs._project(world.project_id)
    frame = world.platform.enclave.definition(project, "cohort")[1]
    return ({str(p) for p in frame["pid"].to_list()},
            [float(b) for b in frame["bmi"].drop_nulls().to_list()])


def seen(world: World, row: JobRow) -> str:
    """Everything about a job its researcher can read: status, reasons, the plan, each
    output's report as they may read it, and each output's released bytes (none are released
    without the checkers)."""
    text = json.dumps({"status": row.status, "reasons": row.reasons, "plan": row.plan})
    me = world.sign_in(world.researcher)
    with world.ctx.transaction() as db:
        for output_id in row.outputs.values():
            out = db.get(OutputRow, output_id)
            assert out is not None
            text += json.dumps(requests.read(world.ctx, me, output_id).report.as_dict())
            if out.status == "released":
                text += world.platform.outputs.download(
                    world.sign_in(world.researcher), output_id).payload.decode(errors="replace")
    return text


def outputs_of(world: World, row: JobRow) -> dict[str, OutputRow]:
    with world.ctx.transaction() as db:
        found = {name: db.get(OutputRow, oid) for name, oid in row.outputs.items()}
        for out in found.values():
            db.expunge(out)
    return found  # type: ignore[return-value]


def released_at_once(world: World, row: JobRow) -> list[str]:
    """The outputs a release request would let out without a person: none may be the job's."""
    return [name for name, out in outputs_of(world, row).items()
            if out.kind == "job_file" and out.verdict in ("release", "release_with_suppression")]


def alerts(world: World, detector: str = "jobs.sandbox") -> int:
    with world.ctx.transaction() as db:
        return sum(a.count for a in db.scalars(select(AlertRow)
                                               .where(AlertRow.detector == detector)))


def no_leak(world: World, row: JobRow) -> None:
    pids, _ = truth(world)
    text = seen(world, row)
    assert not any(p in text for p in pids), "a real pseudonym reached the researcher"
    assert released_at_once(world, row) == []


# -- the network ---------------------------------------------------------------------------------


def test_a_socket_to_the_internet_finds_no_network_and_raises_an_alert(world: World) -> None:
    before = alerts(world)
    row = job(world, """
        import socket
        try:
            socket.create_connection(("93.184.216.34", 80), timeout=3)
            said = "connected"
        except OSError as error:
            said = type(error).__name__
        open("output/notes.txt", "w").write(said)
        """)
    assert "network" in row.walls
    assert alerts(world) > before
    no_leak(world, row)


def test_a_dns_lookup_finds_no_resolver(world: World) -> None:
    row = job(world, """
        import socket
        try:
            socket.getaddrinfo("example.com", 443)
        except OSError:
            pass
        open("output/notes.txt", "w").write("tried")
        """)
    assert "network" in row.walls


def test_a_local_socket_server_reaches_nothing_outside(world: World) -> None:
    """Loopback inside its own network namespace: the platform's services are not there."""
    row = job(world, """
        import socket
        reached = []
        for port in (5432, 6379, 8000):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1)
                reached.append(port)
            except OSError:
                pass
        open("output/notes.txt", "w").write(str(reached))
        """)
    assert "network" in row.walls
    assert outputs_of(world, row)["notes"].verdict == Verdict.REVIEW.value


# -- the file system -----------------------------------------------------------------------------


def test_the_key_the_store_and_the_database_are_not_in_the_sandbox(world: World) -> None:
    root = world.platform.store.root
    key = root.parent / "master.key"
    venv = Path(sys.prefix)
    targets = [str(key), str(root), str(root / "strongroom.db"), str(root / "projects"),
               str(venv.parent), "/etc/passwd", "/etc/shadow"]
    row = job(world, f"""
        import os
        found = []
        for path in {targets!r}:
            try:
                found.append((path, sorted(os.listdir(path)) if os.path.isdir(path)
                              else open(path, "rb").read(64).hex()))
            except OSError as error:
                found.append((path, type(error).__name__))
        open("output/notes.txt", "w").write(repr(found))
        """)
    assert row.status == "finished", row.reasons
    note = world.platform.jobs._unseal(row, "log.txt")  # custodian-side: nothing leaked in
    keyhex = key.read_bytes()[:16].hex()
    held = dict(ast.literal_eval(files_of(world, row)["notes"].decode()))
    for path in targets[:4]:  # the key, the store, its database, the projects' files
        assert held[path] == "FileNotFoundError", (path, held[path])
    assert held[str(venv.parent)] == [venv.name]  # the Python environment, and only that
    assert keyhex not in repr(held) and keyhex.encode() not in note


def files_of(world: World, row: JobRow) -> dict[str, bytes]:
    """The bytes kept for each of a job's outputs (custodian-side)."""
    from strongroom.outputs import files

    project = world.platform.jobs._project(world.project_id)
    return {name: files.load(world.ctx, project, out.sha256)
            for name, out in outputs_of(world, row).items()}


def test_another_projects_files_are_not_there(world: World) -> None:
    other = world.export_project("Other", "Another study of the same cohort", [31, 34])
    row = job(world, f"""
        import os
        found = [os.path.exists(p) for p in ("{world.ctx.project_dir(other)}",
                                             "{world.ctx.project_dir(world.project_id)}",
                                             "{world.ctx.root}")]
        open("output/notes.txt", "w").write(repr(found))
        """)
    assert files_of(world, row)["notes"] == b"[False, False, False]"


def test_the_platform_environment_and_pid_1_hold_no_secret(world: World) -> None:
    row = job(world, """
        import os
        seen = repr(dict(os.environ))
        for name in ("environ", "cmdline"):  # the sandbox's init: root's, so closed to the job
            try:
                seen += open(f"/proc/1/{name}", "rb").read().decode(errors="replace")
            except PermissionError:
                seen += f"{name}: closed"
        seen += repr(sorted(os.listdir("/proc")))
        open("output/notes.txt", "w").write(seen.replace("\\x00", " "))
        """)
    assert row.status == "finished" and "notes" in row.outputs, row.reasons
    held = files_of(world, row)["notes"].decode()
    assert "platform-secret-4f1c" not in held and SECRET_ENV not in held
    assert str(world.platform.store.root) not in held


def test_the_code_and_inputs_are_read_only(world: World) -> None:
    row = job(world, """
        tried = []
        for path in ("analysis/study.py", "inputs/cohort.parquet", "project.yaml"):
            try:
                open(path, "ab").write(b"x")
                tried.append("wrote " + path)
            except OSError as error:
                tried.append(type(error).__name__)
        open("output/notes.txt", "w").write(repr(tried))
        """)
    assert "wrote" not in files_of(world, row)["notes"].decode()


def test_a_link_in_the_output_folder_to_the_inputs_is_not_followed(world: World) -> None:
    row = job(world, """
        import os
        os.symlink("/job/inputs/cohort.parquet", "output/table.csv")
        try:
            os.link("/job/inputs/cohort.parquet", "output/notes.txt")
        except OSError:
            pass
        """, outputs=f"{TABLE}\n{TEXT}")
    assert row.outputs == {}
    # on the dummy data already: the job fails, and which output was not is not said
    assert row.status == "failed" and row.reasons == [DUMMY_FAILED]


# -- processes, memory, time, size -----------------------------------------------------------------


def test_a_fork_bomb_is_held_and_the_platform_carries_on(world: World) -> None:
    row = job(world, """
        import os, time
        children = 0
        while children < 10_000:
            try:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                children += 1
            except OSError:
                break
        raise SystemExit(f"started {children}")
        """)
    assert row.status == "failed"
    assert "processes" in row.walls, (row.walls, row.reasons)
    assert row.reasons == [DUMMY_FAILED], row.reasons  # the wall: the custodian's
    assert "more processes than its limit" in row.usage["dummy"]["ended"]
    after = job(world, "open('output/notes.txt', 'w').write('fine')")
    assert after.status == "finished", after.reasons
    for _ in range(100):  # its groups go once the killed processes are reaped
        if not list(Path("/sys/fs/cgroup/pids").rglob(f"strongroom-{row.id}-*")):
            break
        time.sleep(0.2)
    assert not list(Path("/sys/fs/cgroup/pids").rglob(f"strongroom-{row.id}-*"))


def test_filling_memory_is_stopped(world: World) -> None:
    row = job(world, """
        blocks = []
        while True:
            blocks.append(bytearray(64 << 20))
        """)
    assert row.status == "failed"
    assert "memory" in row.walls, (row.walls, row.reasons)


def test_a_forbidden_system_call_is_the_wall_the_custodian_is_told(world: World) -> None:
    """ptrace of the sandbox's init (it stopped PID 1 before the filter): ended at once, and
    the custodian is told which wall, as for memory or time (the researcher reads the dummy
    run's one reason and meets the wall at home)."""
    row = job(world, """
        import ctypes
        ctypes.CDLL(None).ptrace(16, 1, 0, 0)
        open("output/notes.txt", "w").write("attached")
        """)
    assert row.status == "failed" and "syscall" in row.walls, (row.walls, row.reasons)
    assert row.reasons == [DUMMY_FAILED], row.reasons  # the wall: the custodian's
    assert "system call the sandbox forbids" in row.usage["dummy"]["ended"]


def test_running_forever_is_stopped_at_the_wall_time(world: World) -> None:
    world.platform.jobs.limits = replace(LIMITS, wall_seconds=4)
    row = job(world, "while True:\n    pass\n")
    assert row.status == "failed"
    assert "time" in row.walls
    assert row.reasons == [DUMMY_FAILED], row.reasons  # the wall: the custodian's
    assert "longer than its wall-time limit" in row.usage["dummy"]["ended"]


def test_a_huge_file_is_refused_by_the_file_size_limit(world: World) -> None:
    row = job(world, """
        with open("output/notes.txt", "wb") as f:
            for _ in range(64):
                f.write(b"0" * (1 << 20))
        """)
    assert row.status == "failed"
    assert "file_size" in row.walls, (row.walls, row.reasons)


def test_many_files_filling_the_output_folder_are_stopped(world: World) -> None:
    row = job(world, """
        import time
        for n in range(100):
            with open(f"output/part{n}.bin", "wb") as f:
                f.write(b"0" * (8 << 20))
        time.sleep(5)
        """)
    assert row.status == "failed"
    assert "output_size" in row.walls, (row.walls, row.reasons)


def test_starting_a_program_raises_an_alert(world: World) -> None:
    before = alerts(world)
    row = job(world, """
        import subprocess
        done = subprocess.run(["sh", "-c", "id"], capture_output=True)
        open("output/notes.txt", "w").write(done.stdout.decode())
        """)
    assert "program" in row.walls
    assert alerts(world) > before


def test_closing_the_monitor_to_hide_a_try_stops_the_job(world: World) -> None:
    row = job(world, """
        import os, socket
        os.close(int(os.environ["STRONGROOM_MONITOR_FD"]))
        socket.getaddrinfo("example.com", 80)
        """)
    assert row.status == "failed"
    assert "monitor" in row.walls


def test_execing_an_interpreter_without_the_monitor_is_seen_first(world: World) -> None:
    row = job(world, """
        import os, sys
        os.execv(sys.executable, [sys.executable, "-S", "-c", "import socket"])
        """)
    assert "program" in row.walls


# -- row-level data through the outputs ---------------------------------------------------------


def test_rows_in_an_undeclared_file_never_leave(world: World) -> None:
    row = job(world, """
        from strongroom import sdc
        sdc.read("cohort").to_csv("output/everyone.csv")
        open("output/notes.txt", "w").write("nothing to see")
        """)
    assert set(row.outputs) == {"notes"}
    no_leak(world, row)


def test_rows_in_a_declared_table_are_shown_to_the_checkers_only(world: World) -> None:
    """The scanner finds the IDs; its finding is the checkers' (reject it), and the
    researcher reads the same constant words as for any file of their own."""
    row = job(world, """
        from strongroom import sdc
        sdc.read("cohort")[["pid", "bmi", "sbp"]].head(200).to_csv("output/table.csv",
                                                                    index=False)
        """, outputs=TABLE)
    out = outputs_of(world, row)["table"]
    assert out.verdict == Verdict.REVIEW.value
    whole = requests.report_of(out)
    assert any("the scanner:" in f.reason and "reject it" in f.reason for f in whole.findings)
    assert whole.withheld and [f.rule for f in whole.shown().findings] == ["job_file"]
    no_leak(world, row)


def test_values_without_ids_in_a_declared_table_wait_for_the_checkers(world: World) -> None:
    row = job(world, """
        from strongroom import sdc
        frame = sdc.read("cohort")
        frame[["bmi"]].head(50).to_csv("output/table.csv", index=False)
        """, outputs=TABLE)
    out = outputs_of(world, row)["table"]
    assert out.verdict in (Verdict.REVIEW.value, Verdict.BLOCK.value)
    no_leak(world, row)


def test_values_in_a_models_coefficients_wait_for_the_checkers(world: World) -> None:
    row = job(world, """
        import json
        from strongroom import sdc
        frame = sdc.read("cohort")
        json.dump({"coefficients": frame.bmi.head(40).tolist()}, open("output/fit.json", "w"))
        """, outputs="fit: {path: output/fit.json, kind: model}")
    assert outputs_of(world, row)["fit"].verdict in (Verdict.REVIEW.value, Verdict.BLOCK.value)
    no_leak(world, row)


def _png_with_text(secret: str) -> str:
    return f"""
        import struct, zlib
        import matplotlib.pyplot as plt
        plt.plot([1, 2, 3]); plt.savefig("output/figure.png")
        data = open("output/figure.png", "rb").read()
        payload = b"Comment\\x00" + {secret!r}.encode()
        chunk = struct.pack(">I", len(payload)) + b"tEXt" + payload
        chunk += struct.pack(">I", zlib.crc32(b"tEXt" + payload))
        end = data.rindex(b"IEND") - 4
        open("output/figure.png", "wb").write(data[:end] + chunk + data[end:] + b"TRAILER")
        """


def test_rows_in_a_figures_metadata_are_dropped(world: World) -> None:
    pids, _ = truth(world)
    secret = ",".join(sorted(pids)[:50])
    row = job(world, _png_with_text(secret),
              outputs="figure: {path: output/figure.png, kind: figure}")
    kept = files_of(world, row)["figure"]
    assert kept.startswith(b"\x89PNG") and b"tEXt" not in kept and b"TRAILER" not in kept
    assert sorted(pids)[0].encode() not in kept
    assert outputs_of(world, row)["figure"].verdict == Verdict.REVIEW.value


def test_rows_in_a_figures_low_bits_are_wiped(world: World) -> None:
    """Each participant's BMI hidden in the low four bits of pixels: after re-encoding the
    bits read back are not what was written."""
    row = job(world, """
        import numpy as np
        from PIL import Image
        from strongroom import sdc
        bmi = sdc.read("cohort").bmi.fillna(0).to_numpy()
        nibbles = (np.round(bmi * 10).astype(np.int64) % 16).astype(np.uint8)
        image = np.full((100, 100, 3), 200, dtype=np.uint8)
        flat = image.reshape(-1)
        flat[: nibbles.size] = (flat[: nibbles.size] & 0xF0) | nibbles[: flat.size]
        Image.fromarray(image).save("output/figure.png")
        np.save("output/written.npy", nibbles)
        """, outputs=("figure: {path: output/figure.png, kind: figure}\n"
                      "written: {path: output/written.npy, kind: internal}"))
    from PIL import Image

    kept = np.asarray(Image.open(io.BytesIO(files_of(world, row)["figure"])).convert("RGB"))
    low = kept.reshape(-1)[:100] & 0x0F
    assert len(set(low.tolist())) == 1  # one constant: nothing of the 100 values is left


def test_data_in_a_plans_output_name_is_refused(world: World) -> None:
    row = job(world, """
        from strongroom import sdc
        bmi = sdc.read("cohort").bmi.dropna().iloc[0]
        sdc.frequency(f"o{int(bmi * 10)}", "cohort", "sex")
        """, outputs="table: {path: output/table.csv, kind: table}")
    # the dummy run planned otherwise than the plan submitted: the one reason, the cause the
    # custodian's
    assert row.status == "failed" and row.reasons == [DUMMY_FAILED], row.reasons
    assert "planned otherwise" in row.usage["dummy"]["ended"]
    no_leak(world, row)


def test_a_plan_that_branches_on_one_persons_value_is_refused(world: World) -> None:
    row = job(world, """
        from strongroom import sdc
        frame = sdc.read("cohort")
        if frame.bmi.max() > 45:
            sdc.frequency("table", "cohort", "sex")
        else:
            sdc.summary("table", "cohort", ["bmi"])
        """, outputs=TABLE, plan=planned(("table", {"kind": "frequency", "definition": "cohort",
                                                     "variable": "sex"})))
    if row.status == "failed":  # the dummy run's or the real run's one reason
        assert row.reasons in ([DUMMY_FAILED], [REAL_FAILED]), row.reasons
    else:
        assert row.status == "finished"
    no_leak(world, row)


def test_failing_on_purpose_spends_an_answer(world: World) -> None:
    """Ending otherwise on the real data than on the dummy says something about the data:
    it costs one of the person's answers (a job that ends alike gives it back)."""
    def spent() -> int:
        with world.ctx.transaction() as db:
            return len(list(db.scalars(select(AnswerRow).where(
                AnswerRow.what == "job", AnswerRow.spent.is_(True)))))

    before = spent()
    alike = job(world, "open('output/notes.txt', 'w').write('same')")
    assert alike.status == "finished" and spent() == before
    row = job(world, """
        from strongroom import sdc
        if len(sdc.read("cohort")) > 1500:  # true of the real data only
            raise SystemExit(1)
        open("output/notes.txt", "w").write("dummy")
        """)
    assert row.status == "failed" and spent() == before + 1
    # never its exit status, which the job chooses: one reason, whatever happened
    assert row.reasons == [REAL_FAILED]
    assert row.usage["real"]["exit_code"] == 1  # the custodian's


def test_the_real_runs_log_stays_inside(world: World) -> None:
    pids, _ = truth(world)
    row = job(world, """
        from strongroom import sdc
        print(sdc.read("cohort").head(50).to_string())
        open("output/notes.txt", "w").write("printed")
        """)
    assert row.status == "finished"
    log = world.platform.jobs._unseal(row, "log.txt").decode()
    assert any(p in log for p in pids)  # it was printed, and is kept custodian-side …
    no_leak(world, row)  # … and the researcher sees the dummy run's log only


def test_an_own_files_size_says_nothing_before_release(world: World) -> None:
    row = job(world, """
        from strongroom import sdc
        n = int(sdc.read("cohort").bmi.dropna().iloc[0] * 10)
        open("output/notes.txt", "w").write("x" * n)
        """)
    me = world.sign_in(world.researcher)
    view = requests.read(world.ctx, me, row.outputs["notes"])
    assert view.digest == (None, None)


def test_a_forged_plan_line_fails_the_job(world: World) -> None:
    row = job(world, """
        import os
        open(os.environ["STRONGROOM_PLAN"], "a").write("not a plan\\n")
        """, outputs=TABLE)
    assert row.status == "failed"


def test_a_plan_for_row_level_sql_is_refused_by_the_guard(world: World) -> None:
    row = job(world, """
        from strongroom import sdc
        sdc.sql("table", "SELECT pid, bmi FROM cohort")
        """, outputs=TABLE, plan=planned(("table", {"kind": "aggregate_sql",
                                                     "sql": "SELECT pid, bmi FROM cohort"})))
    assert row.status == "finished" and "table" not in row.outputs
    assert any(r.startswith("sdc output 'table':") for r in row.reasons), row.reasons
    no_leak(world, row)


def test_many_small_outputs_are_refused_before_anything_runs(world: World) -> None:
    many = "\n".join(f"o{n}: {{path: output/o{n}.csv, kind: table}}" for n in range(51))
    with pytest.raises(Invalid, match="outputs"):
        job(world, "pass", outputs=many)


def test_a_planned_output_is_checked_like_any_analysis(world: World) -> None:
    """The sdc route: computed by the platform, with the rules, ledger and suppression."""
    row = job(world, """
        from strongroom import sdc
        sdc.crosstab("table", "cohort", rows="sex", columns="smoking")
        """, outputs=TABLE, plan=planned(("table", {"kind": "crosstab", "definition": "cohort",
                                                     "rows": "sex", "columns": "smoking"})))
    out = outputs_of(world, row)["table"]
    assert out.kind == "crosstab" and out.filename == "table.csv"
    assert out.verdict in ("release", "release_with_suppression")
    no_leak(world, row)





# -- the red team's second round: what a file's bytes, runs side by side, and the platform's
# own reading of the output folder could say -------------------------------------------------


def _shown(world: World, row: JobRow, name: str) -> tuple[str, str, list[str]]:
    view = requests.read(world.ctx, world.sign_in(world.researcher), row.outputs[name])
    return view.status.value, view.report.verdict.value, [f.reason for f in
                                                          view.report.findings]


BAD_PNG = """
import struct, zlib
head = struct.pack(">IIBBBBB", PID, 1, 8, 2, 0, 0, 0)
chunk = b"IHDR" + head
data = (b"\\x89PNG\\r\\n\\x1a\\n" + struct.pack(">I", 13) + chunk
        + struct.pack(">I", zlib.crc32(chunk)) + b"\\x00\\x00\\x00\\x02IDATxx" + b"\\x00" * 8)
open("output/figure.png", "wb").write(data)
"""


def test_a_files_content_changes_nothing_the_researcher_sees(world: World) -> None:
    """A figure whose header says a pseudonym (and breaks the decoder), a note over the size
    limit, a table of IDs: each is kept (a placeholder where it cannot be), and the
    researcher reads exactly what they read for a plain file of their own."""
    pids, _ = truth(world)
    reference = _shown(world, job(world, "open('output/notes.txt', 'w').write('fine')"),
                       "notes")
    for name, outputs, script in [
        ("notes", TEXT, "open('output/notes.txt', 'w').write('x' * (2 << 20))"),
        ("figure", "figure: {path: output/figure.png, kind: figure}",
         BAD_PNG.replace("PID", str(min(int(p) for p in pids)))),
        ("table", TABLE, """
            from strongroom import sdc
            sdc.read("cohort")[["pid"]].head(37).to_csv("output/table.csv", index=False)
            """),
    ]:
        row = job(world, script, outputs=outputs)
        assert row.status == "finished" and row.reasons == [], row.reasons
        status, verdict, reasons = _shown(world, row, name)
        same = [re.sub("SHA-256 [0-9a-f]+", "SHA-256 …", r) for r in reasons]
        assert (status, verdict, same) == (reference[0], reference[1], [
            re.sub("SHA-256 [0-9a-f]+", "SHA-256 …", r) for r in reference[2]]), name
        no_leak(world, row)


def test_sparse_files_past_the_output_limit_are_caught_after_the_run(world: World) -> None:
    row = job(world, """
        for n in range(10):
            with open(f"output/part{n}.bin", "wb") as f:
                f.truncate(16 << 20)  # 16 MiB each, at once, with no pages behind them
        open("output/notes.txt", "w").write("done")
        """)
    assert row.status == "failed" and "output_size" in row.walls, (row.walls, row.reasons)


def test_a_deep_tree_of_folders_is_removed_with_the_inputs(world: World) -> None:
    row = job(world, """
        import os
        path = "output"
        for n in range(3000):
            path = os.path.join(path, "d")
            os.mkdir(path)
        open("output/notes.txt", "w").write("deep")
        """)
    assert row.status in ("finished", "failed")
    assert not list(Path("/dev/shm").glob(f"strongroom-{row.id}-*"))


def test_a_linked_folder_in_an_outputs_path_is_not_followed(world: World) -> None:
    secret = world.platform.store.root.parent / "custodian"
    secret.mkdir(exist_ok=True)
    (secret / "notes.txt").write_text("the custodian's own file")
    row = job(world, f"""
        import os
        os.symlink("{secret}", "output/sub")
        """, outputs="notes: {path: output/sub/notes.txt, kind: text}")
    assert "notes" not in row.outputs
    assert row.status == "failed" and row.reasons == [DUMMY_FAILED]


def test_colliding_paths_in_the_code_are_refused_before_anything_runs(world: World) -> None:
    for extra in ({"output": "a file where the outputs go"}, {"lib": "x", "lib/a.py": "y"}):
        with pytest.raises(Invalid):
            job(world, "pass", **extra)
    with pytest.raises(Invalid, match="written plainly"):
        job(world, "pass", outputs="notes: {path: output//notes.txt, kind: text}")


def test_a_deeply_nested_project_yaml_is_refused_at_once(world: World) -> None:
    deep = "version: 1\nactions: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(Invalid, match="nests deeper"):
        run_job(world, {"project.yaml": deep})


def test_a_job_without_its_plan_is_refused_with_what_to_do(world: World) -> None:
    assert world.researcher is not None
    me = world.sign_in(world.researcher)
    with pytest.raises(Invalid, match="strongroom jobs run study --dummy"):
        world.platform.jobs.submit(me, world.project_id, archive({
            "project.yaml": pipeline(TEXT), "analysis/study.py": "pass"}), "study")


def test_files_no_output_may_be_are_placeholders_with_nothing_said(world: World) -> None:
    """An empty note, invalid JSON, JSON nested past the parser's depth, a CSV of a million
    repeated columns: each is kept as a placeholder, the job finishes with no reason about
    them, and the researcher reads what they read for any file of their own."""
    outputs = "\n".join(f"{n}: {{path: output/{n}.{s}, kind: {k}}}" for n, s, k in (
        ("empty", "txt", "text"), ("broken", "json", "table"), ("deep", "json", "model"),
        ("wide", "csv", "table")))
    row = job(world, """
        open("output/empty.txt", "w").close()
        open("output/broken.json", "w").write("{not json")
        open("output/deep.json", "w").write("[" * 200_000 + "]" * 200_000)
        open("output/wide.csv", "w").write(",".join(["a"] * 1_000_000) + "\\n")
        """, outputs=outputs)
    assert row.status == "finished" and row.reasons == [], row.reasons
    assert set(row.outputs) == {"empty", "broken", "deep", "wide"}
    for name in row.outputs:
        status, verdict, reasons = _shown(world, row, name)
        assert (status, verdict, len(reasons)) == ("checked", "review", 1), (name, reasons)
    no_leak(world, row)
