"""A demo world (``run_demo``) built once per test run and copied for each module that uses it.

The console's browser tests (tests/functional/web) and the demo's story tests
(tests/integration/test_demo.py) read the same small demo world; each built its own (about
40 s of a worker's time apiece on two cores, most of it the genotypes' simulation and sealing
and the tour's analyses). Here the first module to ask builds it, under a lock, in a folder
the run's xdist workers share (the run's base temporary folder: a new one each run, so a
world is never carried over from an earlier run or earlier code), and every module, the first
included, gets a copy of its own (its data directory, its key and its leaked file: a few MB,
copied in milliseconds), which it may change as it likes. A module on the other worker that
asks while the world is being built waits for it rather than building it again.

The world is built with the test worlds' settings (tests/access_world.py: cheap password
hashes, no timing floors on answers); the module opens its copy with its own settings.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import pickle
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from strongroom.demo import DemoResult, run_demo
from tests.access_world import SETTINGS

# The world the console's pages and the demo's story tests are read on: the story's extract,
# alert and suspension need 1,000 participants (demo.story.STORY_MIN); the released GWAS
# page needs a GWAS that passes the check and draws its plots, which 500 markers give. No
# jobs: test_workspace runs one, and the CLI's demo (tests/functional/test_cli.py) runs the
# demo's two.
PARTICIPANTS, SEED, VARIANTS = 1_500, 11, 500
DATA = "demo"  # the data directory's name in a world's folder (its key and leaked file beside)


def shared_folder(factory: pytest.TempPathFactory) -> Path:
    """The run's folder that every xdist worker of the run sees (each worker's base temporary
    folder is a subfolder of the controller's); without xdist, the session's own."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


def demo_world(factory: pytest.TempPathFactory, name: str, *, participants: int = PARTICIPANTS,
               seed: int = SEED, variants: int = VARIANTS) -> tuple[Path, DemoResult]:
    """A copy of the run's demo world of these options, in a new temporary folder ``name``:
    (the copy's data directory, the build's result with its paths made the copy's)."""
    shared = shared_folder(factory) / f"demo-world-{participants}-{seed}-{variants}"
    shared.parent.mkdir(parents=True, exist_ok=True)
    result_file = shared / "result.pickle"
    with _locked(shared.with_name(shared.name + ".lock")):
        if not result_file.is_file():  # not built yet (or a build that failed part way)
            shutil.rmtree(shared, ignore_errors=True)
            building = shared.with_name(shared.name + ".building")
            shutil.rmtree(building, ignore_errors=True)
            building.mkdir()
            result = run_demo(building / "world" / DATA, participants=participants, seed=seed,
                              variants=variants, jobs=False, settings=SETTINGS)
            (building / "result.pickle").write_bytes(pickle.dumps(result))
            building.rename(shared)
    built = pickle.loads(result_file.read_bytes())
    assert isinstance(built, DemoResult)
    return copy_world(shared / "world", factory.mktemp(name), built)


def copy_world(source: Path, into: Path, result: DemoResult) -> tuple[Path, DemoResult]:
    """The world in folder ``source`` (its data directory, key and leaked file) copied into
    ``into``: its data directory, and ``result`` with its paths made the copy's. The copy's
    configuration names its own key."""
    shutil.copytree(source, into, dirs_exist_ok=True, symlinks=True)
    root = into / DATA
    key_file = into / result.key_file.name
    # the configuration's key file is where a command without --key-file looks for the key;
    # the keyring's own note of it is sealed with the store key, and stays the built world's
    config = root / "strongroom.yaml"
    config.write_text(config.read_text().replace(str(result.key_file), str(key_file)))
    assert yaml.safe_load((root / "strongroom.yaml").read_text())["key_file"] == str(key_file)
    story = result.story
    if story.leaked is not None:
        story = dataclasses.replace(story, leaked=into / story.leaked.name)
    return root, dataclasses.replace(result, key_file=key_file, story=story)
