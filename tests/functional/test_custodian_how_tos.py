"""A custodian's how-tos, walked as written by a newcomer with files of their own, in a store of
their own made as the pages say (not the demo's): ingest-a-cohort.md, ingest-genotypes.md,
measure-reidentification-risk.md, operate.md's operator commands and run-the-benchmarks.md's
quick forms.

One world for the module: the custodian's machine, a folder standing in for its root, the
pages' absolute paths (`/srv/strongroom`, `/etc/strongroom/master.key`, `/backups/…`,
`/data/…`) put under it. The custodian's files are fake UK Biobank extracts shipped by public
tools (`/work/shared/research-data/ukb-fake-examples/`): ukbwranglr's random basket (ukbconv
TSV), ingested once mended as its refusal says and its dates before birth relaxed by name, then
ukbtools' (R/tab, 100 people), refused as it is and ingested as two baskets once mended; their
genotypes are PLINK 1 files written for those people (the page says nothing of how a custodian
comes by them), and the same converted by plink2 to PLINK 2 and BGEN. The store then goes
through operate.md: backed up, restored, scrubbed, its master key moved into SoftHSM, a copy
with its database lost recovered. Each page's commands are read from its code blocks, and
what they print is checked against what the page says they print: its example messages as
forms (numbers, names and values free), its figures where the world can reproduce them.

Not walked here: measure-reidentification-risk.md's gate on every extract (a platform with a
project: tests/integration/test_extract_gate.py) and its pycanon comparison (a benchmark);
operate.md's service unit (tests/functional/test_service_unit.py), its upgrade of an older
release's store (tests/integration/test_upgrade_history.py: here the upgrade finds the store
current), its restore onto PostgreSQL, its health and metrics endpoints (a server:
tests/integration/test_health_metrics.py) and `make migration` (a developer's);
run-the-benchmarks.md's long forms (minutes each) beyond reading that each command names a
script and options it has.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from tests.functional.test_demo_how_tos import HOW_TO, blocks, cli

FAKES = Path(__file__).resolve().parents[3] / "shared" / "research-data" / "ukb-fake-examples"
BASKET = FAKES / "ukbtools_ukbxxxx.tab"
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLINK2 = shutil.which("plink2")

pytestmark = [pytest.mark.slow,  # a custodian's store, its backups and a 100,000 cohort
              pytest.mark.skipif(not BASKET.is_file(), reason=f"no fake extract at {BASKET}")]


@dataclass
class Machine:
    """The custodian's machine: ``root`` stands for ``/``, ``home`` is where they type."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def data_dir(self) -> Path:
        return self.root / "srv" / "strongroom"

    @property
    def key_file(self) -> Path:
        return self.root / "etc" / "strongroom" / "master.key"

    def local(self, line: str) -> str:
        """The page's line with its absolute paths on this machine."""
        return re.sub(r"(?<![\w.:/])/(srv|etc|backups|data)/", rf"{self.root}/\1/", line)

    def argv(self, line: str, **names: str) -> list[str]:
        for placeholder, value in names.items():
            line = line.replace(placeholder, value)
        line = self.local(line.split("  #")[0].split(" # ")[0].strip())
        parts = re.findall(r"'[^']*'|\"[^\"]*\"|\S+", line)
        argv = [p[1:-1] if p[:1] in "'\"" else p for p in parts]
        assert argv[0] == "strongroom", line
        return argv[1:]

    def run(self, line: str, ok: tuple[int, ...] = (0,), **names: str) -> tuple[str, str]:
        status, out, err = cli(*self.argv(line, **names), cwd=self.home)
        assert status in ok, (line, status, out, err)
        return out, err


def commands(text: str, language: str = "sh") -> list[str]:
    """The page's `strongroom …` commands in ``language`` blocks, continuation lines joined."""
    return [line.strip() for block in blocks(text, language)
            for line in re.sub(r"\\\n\s*", " ", block).splitlines()
            if line.strip().startswith("strongroom ")]


def form(example: str) -> str:
    """A regex for a message the page quotes: its numbers, parenthesised names, quoted values,
    column and file names and elisions free, the rest as written, any run of spaces a line break too
    (the console wraps at its width)."""
    token = r"(\d[\d,.]*%?|…|\([A-Z][^)]*\)|'[^']*'|\bp\d+\b|\bukb(?=\.))"
    pieces = []
    for i, piece in enumerate(re.split(token, example)):
        if i % 2 == 0:
            pieces.append(r"\s+".join(re.escape(word) for word in piece.split(" ")))
        elif piece == "…":
            pieces.append(".*?")
        elif piece[0].isdigit():
            pieces.append(r"[\d.,]+%?")
        elif piece[0] == "(":
            pieces.append(r"\([^)]*\)")
        elif piece[0] == "'":
            pieces.append("'[^']*'")
        else:
            pieces.append(r"\S+")
    return "".join(pieces).replace(r"\s+.*?", ".*?").replace(r".*?\s+", ".*?")


def said(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text, re.S)
    assert found is not None, (pattern, text)
    return found


def table_rows(text: str) -> dict[str, str]:
    """A Markdown table's first column → its second, backticks kept."""
    return {m[1].strip(): m[2].strip() for m in re.finditer(r"^\| ([^|]+) \| ([^|]+) \|", text,
                                                            re.M)}


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    root = tmp_path_factory.mktemp("custodian")
    for folder in ("home", "srv", "backups", "data"):
        (root / folder).mkdir()
    (root / "etc" / "strongroom").mkdir(parents=True, mode=0o700)  # operate.md: install -d
    yield Machine(root)


# -- ingest-a-cohort.md --------------------------------------------------------------------

def mended(source: Path) -> pl.DataFrame:
    """The extract mended as its refusal says: the columns of fields the dictionary lacks
    dropped, assessment centres not in coding 10 made missing."""
    frame = pl.read_csv(source, separator="\t", null_values=["NA"], infer_schema=False)
    frame = frame.drop([c for c in frame.columns if c.startswith("f.6142.")])
    return frame.with_columns(pl.when(pl.col("f.54.0.0").is_in(["11015", "11019"]))
                              .then(None).otherwise(pl.col("f.54.0.0")).alias("f.54.0.0"))


def test_ingest_a_cohort_runs_as_written(machine: Machine,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    text = (HOW_TO / "ingest-a-cohort.md").read_text()
    init, ingest, info = commands(text)
    # 1. a data directory, its key outside it, readable by its owner only
    out, _ = machine.run(init)
    assert (machine.data_dir / "strongroom.yaml").is_file(), out
    assert machine.key_file.stat().st_mode & 0o777 == 0o600
    status, _, err = cli(*machine.argv(init.replace("/etc/strongroom/master.key",
                                                    "/srv/other/master.key").replace(
        "/srv/strongroom", "/srv/other")), cwd=machine.home)
    assert status == 1 and "outside" in err, err  # "init refuses otherwise"
    # without --key-file, the key in ~/.config/strongroom/keys/<store-id>.key; with
    # STRONGROOM_MASTER_KEY, in no file at all
    monkeypatch.setenv("HOME", str(machine.home))
    bare = init.split(" --key-file")[0]
    out, _ = machine.run(bare.replace("/srv/strongroom", "/srv/keyless"))
    store_id = said(r"\(store\s+(\w+)\)", out)[1]
    assert (machine.home / ".config" / "strongroom" / "keys" / f"{store_id}.key").is_file()
    monkeypatch.setenv("STRONGROOM_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    machine.run(bare.replace("/srv/strongroom", "/srv/from-env"))
    assert len(list((machine.home / ".config" / "strongroom" / "keys").iterdir())) == 1
    said(r"no cohort stored yet", machine.run(info.replace("/srv/strongroom", "/srv/from-env"))[0])
    monkeypatch.delenv("STRONGROOM_MASTER_KEY")
    examples = table_rows(text)
    # 2. a basket of randomly generated test data (ukbwranglr's, ukbconv TSV): refused, its
    # columns out of the dictionary dropped as the refusal says, then its dates before birth
    # relaxed by name as the page says of such fixtures
    shutil.copy(FAKES / "ukbwranglr_dummy_ukb_main.tsv", machine.home / "ukb12345.tsv")
    fixture = {"ukb12345.csv": "ukb12345.tsv"}
    _, err = machine.run(ingest, ok=(1,), **fixture)
    for problem in ("instance or array outside the field", "event before birth"):
        said(form(examples[problem].strip("`")), err)
    dropped = re.findall(r"ukb12345\.tsv, field (\S+): .*column dropped", err)
    raw = pl.read_csv(machine.home / "ukb12345.tsv", separator="\t", infer_schema=False)
    raw.drop(dropped).write_csv(machine.home / "ukb12345.tsv", separator="\t")
    _, err = machine.run(ingest, ok=(1,), **fixture)
    problems = [p for p in err.splitlines() if p.startswith("  - ")]
    assert problems and all("[rule event-before-birth]" in p for p in problems), err
    relax = said(r"`(--relax event-before-birth)`", text)[1]
    out, _ = machine.run(f"{ingest} {relax}", **fixture)
    said(r"stored cohort version \S+: 10 participants", out)
    # 3. the custodian's basket as it came (ukbtools', R/tab): refused, every problem named,
    # nothing changed
    before = json.loads(machine.run(info.split("#")[0] + " --json")[0])["version"]["id"]
    shutil.copy(BASKET, machine.home / "ukb12345.tab")
    basket = {"ukb12345.csv": "ukb12345.tab"}
    _, err = machine.run(ingest, ok=(1,), **basket)
    assert "nothing was changed" in err, err
    for problem in ("unknown field", "code outside the coding"):
        example = examples[problem].strip("`")
        said(form(example), err)
    assert json.loads(machine.run(info.split("#")[0] + " --json")[0])["version"]["id"] == before
    # mended as it says, and given as two baskets (R/tab and ukbconv CSV), merged on eid
    frame = mended(machine.home / "ukb12345.tab")
    first = frame.select("f.eid", "f.31.0.0", "f.54.0.0", "f.54.1.0", "f.54.2.0")
    first.write_csv(machine.home / "ukb12345.tab", separator="\t", null_value="NA")
    second = frame.drop("f.31.0.0", "f.54.0.0", "f.54.1.0", "f.54.2.0")
    second.rename({c: "eid" if c == "f.eid" else "{}-{}.{}".format(*c[2:].split("."))
                   for c in second.columns}).write_csv(machine.home / "ukb67890.csv")
    out, err = machine.run(ingest, **{"ukb12345.csv": "ukb12345.tab ukb67890.csv"})
    said(r"stored cohort version \S+: 100 participants", out)
    # 4. what is stored: counts, sizes and the sources (names, SHA-256, sizes), no value
    out, _ = machine.run(info)
    assert "100 participants" in out and "participants" in out
    for name in ("ukb12345.tab", "ukb67890.csv"):
        digest = hashlib.sha256((machine.home / name).read_bytes()).hexdigest()
        said(rf"{re.escape(name)}\s.*{digest}", out)
    as_json = json.loads(machine.run(info.split("#")[0] + " --json")[0])
    version = as_json["version"]
    assert version["participants"] == 100 and version["tables"]["participants"]["rows"] == 100
    assert {s["name"]: s["bytes"] for s in version["sources"]} == {
        name: (machine.home / name).stat().st_size for name in ("ukb12345.tab", "ukb67890.csv")}
    assert "10.81" not in out + json.dumps(as_json)  # the first person's Townsend index
    # STRONGROOM_DATA_DIR stands in for -d
    monkeypatch.setenv("STRONGROOM_DATA_DIR", str(machine.data_dir))
    status, out, err = cli("cohort", "info", "--json", cwd=machine.home)
    assert status == 0 and json.loads(out)["version"]["id"] == version["id"], err
    # a refused ingest later leaves the cohort before it current
    shutil.copy(BASKET, machine.home / "ukb99999.tab")
    machine.run(ingest, ok=(1,), **{"ukb12345.csv": "ukb99999.tab"})
    assert json.loads(machine.run(info.split("#")[0] + " --json")[0])["version"]["id"] == \
        version["id"]


# -- ingest-genotypes.md -------------------------------------------------------------------

def write_plink(stem: Path, eids: list[str]) -> None:
    from tests.genotype_files import genotypes, write_bed

    write_bed(stem, genotypes(len(eids), 40, seed=3), eids)


def test_ingest_genotypes_runs_as_written(machine: Machine) -> None:
    text = (HOW_TO / "ingest-genotypes.md").read_text()
    ingest, info = commands(text)
    stem = machine.root / "data" / "ukb_cal_allchr"
    # a sample the cohort does not hold: refused, named, nothing stored
    write_plink(stem, [str(e) for e in range(1, 102)])
    _, err = machine.run(ingest, ok=(1,))
    said(form(table_rows(text)["samples that are not participants of the current cohort"]
              .strip("`")), err)
    assert "1 of 101 samples" in err, err
    _, err = machine.run(info, ok=(1,))
    assert "holds no genotypes" in err, err
    # a .bed cut short: the table's message
    write_plink(stem, [str(e) for e in range(1, 101)])
    whole = stem.with_suffix(".bed").read_bytes()
    stem.with_suffix(".bed").write_bytes(whole[:-7])
    _, err = machine.run(ingest, ok=(1,))
    example = next(v for k, v in table_rows(text).items() if k.startswith("a `.bed` whose"))
    said(form(example.strip("`")), err)
    # the people's files, whole: stored, and described by counts and digests only; first as
    # PLINK 2 and BGEN (the formats' table), named by their main file, then as PLINK 1 by stem
    stem.with_suffix(".bed").write_bytes(whole)
    if PLINK2 is not None:
        from tests.genotype_files import convert

        for kind in ("pgen", "bgen"):
            main = convert(stem.with_suffix(".bed"), kind)
            out, _ = machine.run(ingest.replace("/data/ukb_cal_allchr",
                                                f"/data/{main.name}"))
            said(rf"100 samples × 40 variants.*from {'plink2' if kind == 'pgen' else kind}",
                 machine.run(info)[0])
    out, err = machine.run(ingest)
    out, _ = machine.run(info)
    said(r"100\b.*sample", out)
    said(r"40\b.*variant", out)
    said(rf"ukb_cal_allchr.bed\s+1,003 bytes\s+sha256 {hashlib.sha256(whole).hexdigest()}", out)


# -- measure-reidentification-risk.md ------------------------------------------------------

QIS = ["p31", "p34", "p52", "p54_i0", "p21000_i0"]


@pytest.fixture(scope="module")
def cohort_csv(machine: Machine) -> Path:
    """A table of the page's columns (its five quasi-identifiers, smoking), of people
    synthesised as the README says (`strongroom cohort synth`)."""
    status, _, err = cli("cohort", "synth", "--participants", "20000", "--seed", "7", "--out",
                         str(machine.root / "synth"), cwd=machine.home)
    assert status == 0, err
    people = pl.read_parquet(machine.root / "synth" / "participants.parquet")
    people.select(*QIS, "p20116_i0").write_csv(machine.home / "cohort.csv")
    return machine.home / "cohort.csv"


def console_example(text: str, command: str) -> tuple[str, list[str]]:
    """The console block whose command starts ``$ command``: the command, what it printed."""
    block = next(b for b in blocks(text, "console") if b.startswith(f"$ {command}"))
    first, *printed = re.sub(r"\\\n\s*", " ", block).splitlines()
    return first.removeprefix("$ "), printed


def test_measure_reidentification_risk_runs_as_written(
        machine: Machine, cohort_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's figures are the benchmark's (500,000 people); on this table of 20,000 the
    walk checks each printed line's shape, as the page says of them."""
    text = (HOW_TO / "measure-reidentification-risk.md").read_text()
    assert "benchmarks/privacy_risk.py" in text.split("## Measure a table's risk")[1][:800]
    command, printed = console_example(text, "strongroom risk")
    out, _ = machine.run(command)
    for line in [line for line in printed if line.strip() and line != "…"]:
        said(form(line), out)
    said(r"rows 20,000; quasi-identifiers: p31, p34, p52, p54_i0, p21000_i0", out)
    said(r"a sample of 20,000 from a population of 1,000,000 \(sampling\s+fraction 0.02\)",
         out)
    # --json: every figure (the class-size histogram included), the same as printed
    figures = json.loads(machine.run(command + " --json")[0])
    said(rf"k = {figures['k_anonymity']} \({figures['classes']:,} classes\)", out)
    said(rf"sample uniques: {figures['sample_uniques']:,} ", out)
    assert figures["class_size_histogram"], figures
    # from Python, as written, over the same table
    (python,) = blocks(text, "python")
    lines: list[str] = []
    names: dict[str, Any] = {"frame": pl.read_csv(cohort_csv),
                             "print": lambda *a: lines.append(" ".join(map(str, a)))}
    exec(compile(python, "measure-reidentification-risk.md", "exec"), names)
    three = json.loads(machine.run(command.replace("cohort.csv", "cohort.csv --qi p31,p34,p52")
                                   + " --json")[0])  # the block's, at the command line
    assert lines[0].split()[:2] == [str(three["k_anonymity"]), str(three["sample_uniques"])], \
        (lines[0], three)
    said(r"rows 20,000; quasi-identifiers: p31, p34, p52\n", lines[1])
    # smoking status measured as the command line measures it (a category: equal distance)
    assert names["report"].to_json()["diversity"] == three["diversity"], lines[1]
    said(r"p20116_i0 .*\(equal\)", lines[1])
    # anonymise: the page's command, the shape of what it prints, k met in the file
    command, printed = console_example(text, "strongroom anonymise cohort.csv")
    out, _ = machine.run(command)
    said(form(printed[0]), out)
    for qi in QIS:
        said(rf"\n  {qi}: \S", out)
    assert printed[-2].startswith("suppressed ") and "exact search" in printed[-2]
    said(form(" ".join(printed[-2:])), out)  # "exact search": the least loss, proved
    released = pl.read_parquet(machine.home / "released.parquet")
    assert released.height == 20_000
    assert released.group_by(QIS).len()["len"].min() >= 5  # type: ignore[operator]
    # "never written over an existing file"
    status, _, err = cli(*machine.argv(command), cwd=machine.home)
    assert status != 0 and "released.parquet" in err, err
    # your own hierarchies, in ARX's files, on an Adult-like table of the page's columns
    command, _ = console_example(text, "cat age.csv")
    (arx,) = [line for block in blocks(text, "console")
              for line in re.sub(r"\\\n\s*", " ", block).splitlines()
              if line.startswith("$ strongroom anonymise adult.csv")]
    rng = np.random.default_rng(5)
    schooling = ["Bachelors", "HS-grad", "Masters", "Doctorate", "11th", "Some-college"]
    pl.DataFrame({"age": rng.integers(17, 91, 3000), "sex": rng.choice(["Male", "Female"], 3000),
                  "education": rng.choice(schooling, 3000),
                  "salary-class": rng.choice(["<=50K", ">50K"], 3000, p=[0.75, 0.25])}
                 ).write_csv(machine.home / "adult.csv")
    ages = [f"{a};{a // 5 * 5}-{a // 5 * 5 + 4};{a // 10 * 10}-{a // 10 * 10 + 9};*"
            for a in range(17, 91)]
    example = [line for line in blocks(text, "console")[2].splitlines()[1:3]]
    assert example == ["37;35-39;30-39;*", "38;35-39;30-39;*"]
    assert all(line in ages for line in example)  # the page's layout
    (machine.home / "education.csv").write_text(
        "".join(f"{e};{'higher' if e in schooling[:4] else 'school'};*\n" for e in schooling))
    (machine.home / "age.csv").write_text("\n".join(ages[1:]) + "\n")  # 17 left out
    status, _, err = cli(*machine.argv(arx.removeprefix("$ ")), cwd=machine.home)
    assert status != 0 and "1" in err and "age" in err, err  # every value needs a row
    assert not (machine.home / "out.csv").exists()
    (machine.home / "age.csv").write_text("\n".join(ages) + "\n")
    machine.run(arx.removeprefix("$ "))
    out_csv = pl.read_csv(machine.home / "out.csv", infer_schema=False)
    assert out_csv.height == 3000
    assert out_csv.group_by("age", "sex", "education").len()["len"].min() >= 5  # type: ignore


# -- operate.md ----------------------------------------------------------------------------

def test_operate_runs_as_written(machine: Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator commands on the custodian's store, after its ingests: upgrade (current
    already), check, backup and the timer's form, restore, verify, scrub; the master key moved
    into SoftHSM as the page tries it; a restored copy whose metadata.db is lost, checked,
    recovered and its lost history acknowledged."""
    text = (HOW_TO / "operate.md").read_text()
    lines = commands(text)

    def line(start: str) -> str:
        return next(c for c in lines if c.startswith(start))

    # without who and why, an operator command changes nothing and says what to add
    backup = line("strongroom backup /backups/strongroom-")
    status, _, err = cli(*machine.argv(backup.split(" --operator")[0]), cwd=machine.home)
    assert status == 1 and "--operator NAME --reason TEXT" in err, err
    assert not list((machine.root / "backups").iterdir())
    upgrade = line("strongroom upgrade")
    out, _ = machine.run(upgrade)
    assert "already at this release's schema" in out, out
    # it refuses while the store is open (here, by a store open in this process), in the
    # page's words
    from strongroom.cohort.store import Store

    (refusal,) = re.findall(r"```text\n(the store at .*?)```", text, re.S)
    with Store.open(machine.data_dir, machine.key_file):
        _, err = machine.run(upgrade, ok=(1,))
    said(form(machine.local(" ".join(refusal.split()))), err)
    out, _ = machine.run(line("strongroom store check"))
    assert "opens" in out, out
    out, _ = machine.run(backup)
    (made,) = (machine.root / "backups").iterdir()
    assert made.name == "strongroom-2026-11-24.srbk" and "holds no master key" in out, out
    # the timer's backup: no -d, the unit's STRONGROOM_DATA_DIR
    timer = said(r"\(`(strongroom backup /backups/\$\(date \+%F\)\.srbk[^`]*)`", text)[1]
    monkeypatch.setenv("STRONGROOM_DATA_DIR", str(machine.data_dir))
    machine.run(timer.replace("$(date +%F)", "2026-11-25"))
    assert (machine.root / "backups" / "2026-11-25.srbk").is_file()
    monkeypatch.delenv("STRONGROOM_DATA_DIR")
    # restore into a new directory, then verify and scrub it
    restore = line("strongroom restore /backups/")
    out, _ = machine.run(restore)
    restored = machine.root / "srv" / "strongroom-restored"
    assert (restored / "metadata.db").is_file(), out
    out, _ = machine.run(line("strongroom audit verify -d /srv/strongroom-restored"))
    assert out.startswith("audit log OK"), out
    out, _ = machine.run(line("strongroom store scrub"))
    assert "all intact" in out, out
    assert json.loads(machine.run(
        "strongroom cohort info --json -d /srv/strongroom-restored")[0])["version"][
        "participants"] == 100
    # the master key into an HSM, as the page tries it with SoftHSM (its own token folder;
    # a process of its own, since a PKCS#11 library reads its configuration once)
    if shutil.which("softhsm2-util") is None or not Path(
            "/usr/lib/softhsm/libsofthsm2.so").exists():
        pytest.skip("no SoftHSM here (apt-get install softhsm2)")
    (hsm,) = [b for b in blocks(text, "sh") if "softhsm2-util" in b]
    tokens = machine.root / "softhsm"
    tokens.mkdir()
    (machine.root / "softhsm2.conf").write_text(f"directories.tokendir = {tokens}\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(machine.root / "softhsm2.conf"),
           "PATH": f"{BIN}:{os.environ['PATH']}"}
    script = machine.local(hsm.replace("/srv/strongroom", "/srv/strongroom-restored"))
    done = subprocess.run(["bash", "-e", "-c", script + "\nstrongroom cohort info -d "
                           f"{restored}"], env=env, cwd=machine.home, capture_output=True,
                          text=True)
    assert done.returncode == 0, (done.stdout, done.stderr)
    said(r"master key: key 'master' in PKCS#11 token 'strongroom'", done.stdout)
    said(r"100 participants", done.stdout)
    # a restored copy whose metadata database is lost: check, recover, accept the loss
    machine.run(restore.replace("strongroom-restored", "strongroom-lost"))
    lost = machine.root / "srv" / "strongroom-lost"
    for name in os.listdir(lost):
        if name.startswith("metadata.db"):
            (lost / name).unlink()
    check = line("strongroom store check").replace("/srv/strongroom", "/srv/strongroom-lost")
    _, err = machine.run(check, ok=(1,))
    said(r"metadata database .* is missing", err)
    said(r"sealed version .* that the database does not know", err)
    out, _ = machine.run(line("strongroom store recover").replace("/srv/strongroom",
                                                                  "/srv/strongroom-lost"))
    assert "the store opens" in out, out
    machine.run(check)
    verify = "strongroom audit verify -d /srv/strongroom-lost"
    _, err = machine.run(verify, ok=(1,))
    said(r"\((rolled-back|forked)\)", err)
    machine.run(line("strongroom audit verify -d /srv/strongroom --accept-loss").replace(
        "/srv/strongroom", "/srv/strongroom-lost"))
    out, _ = machine.run(verify)
    said(r"checkpoint\(s\)\s+of\s+a\s+lost\s+history\s+acknowledged\s+at\s+entry\s+\d+\s+by\s+A\."
         r"\s+Custodian", out)


# -- run-the-benchmarks.md -----------------------------------------------------------------

def test_run_the_benchmarks_quick_forms_run_as_written(machine: Machine) -> None:
    """Every command in the page's table names a script that is there, with the options the
    page gives it; the one that takes seconds is run as written."""
    text = (HOW_TO / "run-the-benchmarks.md").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^bench:.*\n(\t.*\n)*\t.*benchmarks/run\.py", makefile, re.M)
    listed = re.findall(r"`(python benchmarks/[^`]+)`", text)
    assert len(listed) >= 10, listed
    for command in listed:
        script, *options = command.split()[1:]
        source = (REPO / script).read_text()
        for option in [o for o in options if o.startswith("--")]:
            assert f'"{option}"' in source, (command, option)
    (quick,) = [c for c in listed if " synth " in c]
    out = machine.root / "c"
    done = subprocess.run([sys.executable, *quick.split()[1:-1], str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.splitlines()[-1])  # its figures, one JSON line
    assert figures["rows_participants"] == 100_000 and figures["seconds"] > 0, figures
    assert (out / "participants.parquet").is_file()
