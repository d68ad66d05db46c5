"""Named sets of actions for API tokens, one for each way a researcher works.

A researcher asks for a token by what they will do (`strongroom token issue PRJ --preset
study`, or the same choice on the console's *API tokens* page) rather than by listing actions;
each preset holds every action the commands of its how-to need, and nothing more (a test runs
each how-to's commands with its preset's token, tests/functional/test_token_presets.py). The
service still checks every action a preset names, like any other: a preset only spells them.

This module imports nothing heavy: the command line's help lists the presets.
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.access.permissions import Action


@dataclass(frozen=True)
class Preset:
    name: str
    description: str  # what a token of this preset is for, in a person's words
    how_tos: tuple[str, ...]  # the how-tos whose commands it covers (in docs/how-to/)
    actions: frozenset[Action]


READ = frozenset({Action.SELF_READ, Action.PROJECT_READ, Action.OUTPUT_READ})
ANALYSE = READ | {Action.DATA_ANALYSE, Action.OUTPUT_REQUEST, Action.OUTPUT_DOWNLOAD}

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("study", "analyses in the enclave: define, analyse, ask for release, download "
           "(the study, the enclave, GWAS and differential-privacy how-tos)",
           ("run-a-study.md", "analyse-in-the-enclave.md", "run-a-gwas.md",
            "query-with-differential-privacy.md"), ANALYSE),
    Preset("jobs", "your own code as jobs: dummy data, submit and wait, status, release, "
           "download (the job how-tos, in Python or R, and the R client's)",
           ("run-a-job.md", "use-the-r-client.md"), ANALYSE),
    Preset("read", "look without acting: your projects, their jobs, outputs, verdicts, "
           "limits and budget", (), READ),
    Preset("export", "record-level extracts of a project that holds the export permission",
           ("hold-transfer-limits.md",), frozenset({Action.SELF_READ, Action.PROJECT_READ,
                                                 Action.DATA_EXPORT})),
)}


def preset_of(name: str) -> Preset:
    """The preset called ``name``; ValueError naming every preset if there is none."""
    found = PRESETS.get(name)
    if found is None:
        raise ValueError(f"there is no token preset {name!r}; the presets are: "
                         f"{', '.join(PRESETS)}")
    return found
