"""The command line starts quickly: heavy modules load only when a command needs them."""

from __future__ import annotations

import subprocess
import sys

# scipy.stats alone took ~1.5 s to import, paid by every command (even --help) while it was
# imported at module level; the few functions that need it import it where they run.
DEFERRED = ("scipy.stats", "statsmodels")


def test_starting_the_cli_does_not_import_scipy_stats_or_statsmodels() -> None:
    probe = ("import sys, strongroom.cli, strongroom.server.app; "
             f"print(' '.join(m for m in sys.modules if m.startswith({DEFERRED!r})))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == [], done.stdout


def test_the_gateways_metering_imports_on_its_own() -> None:
    # metering sits below the console's pages (they meter through it): importing it first
    # used to loop back into the console and fail
    subprocess.run([sys.executable, "-c", "import strongroom.server.metering"], check=True,
                   capture_output=True)


# a researcher's command over the API needs the client, never the store or the analyses: they
# took about 2 s to import, paid by every `strongroom enclave …` before its request was sent
STORE_SIDE = ("strongroom.platform", "strongroom.cohort", "strongroom.enclave",
              "strongroom.outputs", "strongroom.server", "numpy", "polars", "sqlalchemy")


def test_a_researchers_commands_start_without_the_store_or_the_analyses() -> None:
    for command in ("enclave", "jobs"):
        probe = ("import sys; from strongroom.cli import app\n"
                 "try:\n"
                 f"    app([{command!r}, '--help'], prog_name='strongroom')\n"
                 "except SystemExit:\n"
                 "    pass\n"
                 f"print(' '.join(m for m in sys.modules if m.startswith({STORE_SIDE!r})),"
                 " file=sys.stderr)")
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              check=True)
        assert "Usage: strongroom" in done.stdout, done.stdout
        assert done.stderr.split() == [], f"{command}: {done.stderr}"


def test_a_custodians_commands_load_the_platform_only_when_they_open_it() -> None:
    # every custodian command imported strongroom.platform (the services, jobs and analyses,
    # about 1.3 s of CPU) to list its options; they open it through cli.common.open_platform
    for command in ("upgrade", "backup", "restore", "init", "store", "keys", "audit"):
        probe = ("import sys; from strongroom.cli import app\n"
                 "try:\n"
                 f"    app([{command!r}, '--help'], prog_name='strongroom')\n"
                 "except SystemExit:\n"
                 "    pass\n"
                 "print('strongroom.platform' in sys.modules, file=sys.stderr)")
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              check=True)
        assert "Usage: strongroom" in done.stdout, done.stdout
        assert done.stderr.strip() == "False", f"{command}: {done.stderr}"
