"""The R how-to's study as a job at full scale (issue 58), against the same R script run
outside the sandbox on the same CSV input, in the same run.

The study is docs/how-to/run-an-r-job.md's section 4 as written (read from the page): table 1
and a Kaplan–Meier table by smoking asked of the platform through the in-job library (`sdc$`),
a logistic model of diabetes with a natural spline of age (`glm`, `splines::ns`) and a
Kaplan–Meier figure by smoking (`survival::survfit`, `ggplot2`, `ggsave` to a PNG) in plain R,
on docs/how-to/run-a-study.md's dataset definition `study`. Its plan is the one
`strongroom jobs run study --dummy` writes on the dummy data, as a researcher submits it. The
job runs as the platform runs it (the plan through the output check, the dummy run, the real
run in bubblewrap, its own files kept for the output checkers), seen as it ends unless
`--expected` declares its moment; then every output's release is asked for (the survival table
first) and two output checkers approve the script's own files.
"Outside" is the same script with `Rscript` on the same CSV bytes, no sandbox, no dummy run, no
check (its `sdc$` calls only plan).

    python benchmarks/r_study.py [--participants 500000] [--expected SECONDS]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from strongroom.access import projects
from strongroom.attacks.world import AttackWorld
from strongroom.enclave import service as enclave_service
from strongroom.jobs import local, runner, sandbox
from strongroom.jobs.pipeline import parse

sys.path.insert(0, str(Path(__file__).parent))
from jobs import _verdict, release

DOCS = Path(__file__).parents[1] / "docs" / "how-to"
# run-a-study.md's fields: sex, year of birth, assessment date, deprivation, diabetes,
# smoking, BMI, date and cause of death
FIELDS = [31, 34, 53, 189, 2443, 20116, 21001, 40000, 40001]
SECTION = "## 4. A whole study"


def block(text: str, language: str) -> str:
    return text.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def how_to() -> tuple[str, str, str]:
    """The dataset definition, project.yaml and script, as the how-tos give them."""
    section = (DOCS / "run-an-r-job.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    return (block((DOCS / "run-a-study.md").read_text(), "sql"), block(section, "yaml"),
            block(section, "r"))


def machine() -> str:
    return f"load {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=500_000)
    parser.add_argument("--expected", type=int, default=0,
                        help="the action's expected_seconds, added to the page's project.yaml "
                             "(as the page says to at full scale): the job's end is then seen "
                             "at that moment; 0 (the default): none, and the job is seen as "
                             "it ends, so that its own time is measured")
    args = parser.parse_args()
    problem = sandbox.unavailable()
    if problem:
        raise SystemExit(problem)
    if shutil.which("Rscript") is None or not any(
            (Path(d) / "ggplot2" / "DESCRIPTION").is_file() for d in runner.R_SITE_LIBRARIES):
        raise SystemExit("R and ggplot2 are needed (apt-get install r-base-core r-cran-ggplot2 "
                         "…, as .ci/run does)")
    study_sql, project_yaml, script = how_to()
    if args.expected:
        project_yaml = project_yaml.replace(
            "    run: Rscript", f"    expected_seconds: {args.expected}\n    run: Rscript", 1)
    with tempfile.TemporaryDirectory(prefix="strongroom-r-study-") as tmp:
        print(f"building the platform ({machine()})", flush=True)
        started = time.perf_counter()
        world = AttackWorld.build(Path(tmp), cohort=args.participants, seed=5)
        print(f"platform with {args.participants:,} participants (synthesised, ingested "
              f"sealed): {time.perf_counter() - started:.1f} s", flush=True)
        platform = world.platform
        if not args.expected:  # no moment to wait for: the job is seen as it ends
            platform.jobs.end_ladder = ()
        who = world._person("researcher", "researcher", None)
        today = world.clock().date()
        project_id = projects.create(
            platform.access, None, title="Smoking, diabetes and survival",
            purpose="The R how-to's study: table 1, a spline model, survival by smoking",
            lead_id=who.person_id, starts_on=today, expires_on=today.replace(year=today.year + 1),
            fields=FIELDS).project.id
        platform.outputs.define(who, project_id, "study", study_sql)
        started = time.perf_counter()
        platform.outputs.index()  # built once per cohort version, by the first output
        import statsmodels.api  # noqa: F401  (imported once per server process)
        print(f"the raw-row scanner's index and the model libraries, once per server: "
              f"{time.perf_counter() - started:.1f} s", flush=True)

        # at home: the dummy data as downloaded, `strongroom jobs run study --dummy`
        repo = Path(tmp) / "repo"
        (repo / "analysis").mkdir(parents=True)
        (repo / "project.yaml").write_text(project_yaml)
        (repo / "analysis" / "study.R").write_text(script)
        with zipfile.ZipFile(io.BytesIO(enclave_service.dummy_data(
                platform.enclave, who, project_id))) as archive:
            (repo / "dummy").mkdir()
            for name in archive.namelist():
                (repo / "dummy" / name).write_bytes(archive.read(name))
        report = local.run(repo, "study", repo / "dummy")
        assert report.ok, report.log[-2000:]
        print(f"at home on the dummy data: {len(report.plan)} planned outputs, wrote "
              f"{sorted(report.written)}", flush=True)
        files = {path: (repo / path).read_bytes()
                 for path in ("project.yaml", "analysis/study.R", "plans/study.json")}
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for path, data in files.items():
                archive.writestr(path, data)

        # in the enclave
        load = machine()
        started = time.perf_counter()
        job = platform.jobs.submit(who, project_id, buffer.getvalue(), "study")
        job = platform.jobs.run(job.id, who)
        ended = time.perf_counter() - started
        usage = job.usage
        print(f"job {job.status}: {job.reasons or 'no reasons'}; outputs {list(job.outputs)}",
              flush=True)
        assert job.status == "finished", job.reasons
        print(f"verdicts: { {n: _verdict(platform, o) for n, o in job.outputs.items()} }")
        inside = float(usage["seconds"])
        print(f"in the enclave ({load}): submit to the planned outputs checked "
              f"{usage['checked_seconds']} s, the dummy run {usage['dummy_seconds']} s, the real "
              f"run in the sandbox {inside:.2f} s on {usage['rows']:,} rows (peak "
              f"{usage.get('memory_peak', 0) >> 20} MiB); the job's end, with its own files, "
              f"at {ended:.1f} s ("
              + (f"seen at its expected {args.expected} s" if args.expected else
                 "no expected_seconds and no ladder: seen as it ended") + ")", flush=True)

        # outside: the same script on the same CSV (the job's writer), with plain Rscript
        project = platform.jobs._project(project_id)
        frame = platform.enclave.definition(project, "study")[1]
        pipeline = parse(project_yaml, files)

        def write(name: str, path: Path) -> None:
            frame.write_parquet(path)

        load = machine()
        same = runner.chain(pipeline, ["study"], files, Path(tmp) / "outside", write,
                            limits=sandbox.Limits(), name="outside",
                            runs_in=runner.unsandboxed)
        assert same[-1].ending.ok, same[-1].log()[-2000:]
        assert same[-1].plan == job.plan
        outside = same[-1].ending.seconds
        print(f"outside the sandbox ({load}): the same Rscript on the same {len(frame):,}-row "
              f"CSV {outside:.2f} s", flush=True)
        print(f"ratio, the real run in the sandbox / the same script outside: "
              f"{inside / outside:.2f} (target ≤ 1.5); the job's end / outside: "
              f"{ended / outside:.2f}", flush=True)
        release(world, who, job.outputs)
        world.close()


if __name__ == "__main__":
    main()
