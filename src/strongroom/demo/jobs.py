"""The demo's jobs: code of a researcher's own, run next to the data.

One honest study by the first project's lead (a crosstab asked for through strongroom.sdc,
released at once, and a figure the script drew itself, which waits for two output checkers),
then one by the custodian's red team, in its own project, that tries the network from inside
its sandbox (the wall holds, and the security team is alerted about the red team).
"""

from __future__ import annotations

import io
import json
import textwrap
import zipfile
from concurrent.futures import ThreadPoolExecutor

from strongroom.access.context import Principal
from strongroom.demo.enclave import TourStop
from strongroom.demo.world import RED_TEAM_PROJECT, DemoWorld
from strongroom.errors import Conflict
from strongroom.jobs import sandbox
from strongroom.outputs import requests
from strongroom.platform import Platform

PROJECT_YAML = """
version: 1
actions:
  study:
    expected_seconds: 15
    run: python analysis/study.py
    inputs: [base]
    outputs:
      smoking_by_sex: {path: output/smoking_by_sex.csv, kind: table}
      bmi: {path: output/bmi.png, kind: figure}
"""
STUDY = """
import matplotlib.pyplot as plt
from strongroom import sdc

frame = sdc.read("base")
sdc.crosstab("smoking_by_sex", "base", rows="smoking", columns="sex")
plt.hist(frame.bmi.dropna(), bins=40)
plt.xlabel("body mass index")
plt.savefig("output/bmi.png")
"""
NETWORK = """
import socket
try:
    socket.create_connection(("198.51.100.7", 443), timeout=3)
except OSError:
    pass
open("output/notes.txt", "w").write("no network here")
"""


def job_tour(platform: Platform, world: DemoWorld, who: Principal,
             red_team: Principal) -> list[TourStop]:
    """Run the demo's two jobs: the study as ``who`` (the first project's lead), the hostile
    one as ``red_team`` in its project (both signed in)."""
    problem = sandbox.unavailable()
    if problem:
        return [TourStop("a job of the researcher's own code", "not run", "no sandbox",
                         problem)]
    project_id = world.projects[0][0]
    study = platform.jobs.submit(who, project_id, _zip({
        "project.yaml": PROJECT_YAML, "analysis/study.py": STUDY,
        # as `strongroom jobs run study --dummy` writes it on the researcher's machine
        "plans/study.json": json.dumps([{"output": "smoking_by_sex", "analysis": {
            "kind": "crosstab", "definition": "base", "rows": "smoking", "columns": "sex"}}])}),
        "study")
    hostile = platform.jobs.submit(red_team, world.projects[RED_TEAM_PROJECT][0], _zip({
        "project.yaml": PROJECT_YAML.replace("inputs: [base]", "inputs: []").replace(
            "expected_seconds: 15", "expected_seconds: 5").replace(
            "      smoking_by_sex: {path: output/smoking_by_sex.csv, kind: table}\n"
            "      bmi: {path: output/bmi.png, kind: figure}",
            "      notes: {path: output/notes.txt, kind: text}"),
        "analysis/study.py": NETWORK, "plans/study.json": "[]"}), "study")
    # both at once: one after the other, each held to its declared end (the study's 15 s
    # leave room for a slow machine at 500,000 participants; past it, it costs an answer)
    with ThreadPoolExecutor(2) as pool:
        job, hostile = pool.map(lambda j, p: platform.jobs.run(j.id, p), [study, hostile],
                                [who, red_team])
    stops = []
    for name, what in (("smoking_by_sex", "a job's crosstab, asked for through strongroom.sdc"),
                       ("bmi", "a job's own figure (BMI histogram, drawn by its script)")):
        if name not in job.outputs:
            stops.append(TourStop(what, job.status, "not made", "; ".join(job.reasons)))
            continue
        output_id = job.outputs[name]
        verdict = requests.read(platform.access, who, output_id).report.verdict.value
        try:
            asked = platform.outputs.request_release(
                who, output_id, "demo: a job's output, as its researcher would ask for it")
        except Conflict as clash:
            stops.append(TourStop(what, verdict, "refused at release", clash.reasons[0]))
            continue
        stops.append(TourStop(what, verdict, asked.status.value,
                              asked.reasons[0] if asked.reasons else ""))
    stops.append(TourStop("a job that tries to reach the internet from its sandbox",
                          hostile.status, "walls tried: " + (", ".join(hostile.walls) or "none"),
                          "there is no network in the sandbox; the security team is alerted",
                          "red team"))
    return stops


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, textwrap.dedent(text).lstrip())
    return buffer.getvalue()
