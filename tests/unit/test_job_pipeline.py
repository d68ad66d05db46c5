"""project.yaml: every problem is named before anything runs, all at once."""

from __future__ import annotations

import pytest

from strongroom.errors import Invalid
from strongroom.jobs.pipeline import parse
from strongroom.jobs.states import ENDED, MOVES, JobStatus, move

GOOD = """
version: 1
actions:
  prepare:
    run: python analysis/prepare.py
    inputs: [cohort]
    outputs:
      frame: {path: output/frame.parquet, kind: internal}
  study:
    run: notebook analysis/study.ipynb
    needs: [prepare]
    outputs:
      table1: {path: output/table1.csv, kind: table}
      km: {path: output/km.png, kind: figure}
"""
FILES = {"project.yaml", "analysis/prepare.py", "analysis/study.ipynb"}


def reasons(text: str, files: set[str] = FILES) -> list[str]:
    with pytest.raises(Invalid) as refused:
        parse(text, files)
    return refused.value.reasons


def test_a_good_pipeline_orders_each_action_after_what_it_needs() -> None:
    pipeline = parse(GOOD, FILES)
    assert pipeline.order("study") == ["prepare", "study"]
    assert pipeline.actions["study"].runner == "notebook"
    assert set(pipeline.actions["study"].released()) == {"table1", "km"}
    assert pipeline.actions["prepare"].released() == {}


def test_unknown_keys_are_named() -> None:
    found = reasons(GOOD.replace("    inputs: [cohort]", "    inputs: [cohort]\n    image: x")
                    .replace("version: 1", "version: 1\nnetwork: true"))
    assert any("network is not a key" in r for r in found)
    assert any("actions.prepare.image is not a key" in r for r in found)


def test_a_cycle_missing_needs_and_scripts_and_bad_outputs_are_all_named_at_once() -> None:
    text = """
version: 1
actions:
  a:
    run: python a.py
    needs: [b, ghost]
    outputs:
      x: {path: output/x.csv, kind: table}
  b:
    run: python missing.py
    needs: [a]
    outputs:
      y: {path: results/y.csv, kind: table}
      z: {path: output/../../etc/passwd, kind: text}
      w: {path: output/x.csv, kind: table}
      v: {path: output/v.exe, kind: figure}
  c:
    run: bash -c 'curl evil'
    outputs:
      u: {path: /abs/u.csv, kind: table}
"""
    found = " | ".join(reasons(text, {"project.yaml", "a.py"}))
    assert "needs 'ghost', which is not an action" in found
    assert "cycle: a → b → a" in found or "cycle: b → a → b" in found
    assert "'missing.py' is not in the code submitted" in found
    assert "outside the output folder" in found
    assert "may not hold '.' or '..'" in found
    assert "also declared by" in found
    assert "a figure output is one of .png, .svg" in found
    assert "run must be 'python <script>.py'" in found
    assert "must be relative" in found


def test_inputs_the_project_does_not_hold_are_named() -> None:
    pipeline = parse(GOOD, FILES)
    with pytest.raises(Invalid, match="reads input 'cohort', which the project does not hold"):
        pipeline.check_inputs({"participants"})
    pipeline.check_inputs({"participants", "cohort"})


def test_not_yaml_and_not_a_mapping_are_refused_plainly() -> None:
    assert "is not YAML" in reasons("actions: [")[0]
    assert "must be a mapping" in reasons("- a\n- b")[0]
    assert any("version" in r for r in reasons("actions: {}"))


def test_too_many_outputs_are_refused() -> None:
    many = "\n".join(f"      o{n}: {{path: output/o{n}.csv, kind: table}}" for n in range(51))
    text = f"version: 1\nactions:\n  a:\n    run: python a.py\n    outputs:\n{many}\n"
    assert any("outputs" in r for r in reasons(text, {"a.py"}))


def test_the_job_status_table_is_complete() -> None:
    assert set(MOVES) == set(JobStatus)
    assert {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.REFUSED} == ENDED
    assert move("queued", JobStatus.RUNNING) is JobStatus.RUNNING
    for ended in ENDED:
        for target in JobStatus:
            with pytest.raises(Exception, match="cannot become"):
                move(ended.value, target)


def test_anchors_and_long_files_are_refused() -> None:
    bomb = ("version: 1\na: &a [x, x]\nb: &b [*a, *a]\nactions: {s: {run: python a.py, "
            "outputs: {o: {path: output/o.txt, kind: text}}}}")
    assert "anchors and aliases" in reasons(bomb, {"a.py"})[0]
    assert "longer than" in reasons("#" * 70_000)[0]


def test_an_expected_time_is_a_whole_number_of_seconds_within_the_wall() -> None:
    from strongroom.jobs.pipeline import MAX_EXPECTED_SECONDS

    for bad in ("0", str(MAX_EXPECTED_SECONDS + 1), "'soon'", "2.5"):
        with pytest.raises(Invalid, match="expected_seconds"):
            parse(GOOD.replace("    run: python", f"    expected_seconds: {bad}\n    run: python",
                               1), FILES)
    fine = parse(GOOD.replace("    run: python", "    expected_seconds: 30\n    run: python", 1),
                 FILES)
    assert {a.expected_seconds for a in fine.actions.values()} >= {30}


def test_an_output_inside_another_outputs_path_is_named() -> None:
    """Carried into an action that needs both, a file and a file inside it cannot both be
    written (the red team's: the failure came after the job's turn, at the moment the job
    ahead ended); refused when submitted, saying which two."""
    text = """\
version: 1
actions:
  a:
    run: python a.py
    outputs:
      d: {path: output/d.txt, kind: text}
  b:
    run: python a.py
    outputs:
      e: {path: output/d.txt/e.txt, kind: text}
"""
    found = " | ".join(reasons(text, {"project.yaml", "a.py"}))
    assert "'output/d.txt/e.txt' and 'output/d.txt' (declared by action 'a', output 'd') " \
           "cannot both be files, one inside the other" in found, found
