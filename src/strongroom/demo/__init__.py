"""The demo: what ``strongroom demo`` builds, in its own package beside the product.

It composes the platform from above, as the CLI does, and nothing in the product imports it:

- :mod:`.run`: the main job (synthesise, simulate genotypes, ingest, then the rest), its
  stages reported as it goes;
- :mod:`.world`: the demo's institutions, people and projects;
- :mod:`.enclave`: the enclave tour (the demo researcher's honest analyses and GWAS; the red
  team's attacks on the output check, in a project of its own);
- :mod:`.jobs`: the jobs tour (a study of the researcher's own code; a job trying the network);
- :mod:`.story`: something for every role to find in the console.
"""

from strongroom.demo.run import (
    DEMO_VARIANTS,
    MARKER,
    DemoResult,
    leaked_file,
    run_demo,
    smoking_by_sex,
)
from strongroom.demo.story import Signpost, Story, signposts
from strongroom.demo.world import DemoLogin, DemoWorld

__all__ = ["DEMO_VARIANTS", "MARKER", "DemoLogin", "DemoResult", "DemoWorld", "Signpost",
           "Story", "leaked_file", "run_demo", "signposts", "smoking_by_sex"]
