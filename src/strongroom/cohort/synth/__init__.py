"""A synthetic cohort with UK Biobank's shape: 500,000 participants in seconds, no real data.

``synthesise(n, seed)`` returns a :class:`strongroom.cohort.model.Cohort` whose participant table
and event tables follow the data dictionary: Showcase means, SDs, participant counts and codings,
with realistic dependencies between fields and realistic hospital, cancer and death records.
See ``docs/explanation/synthetic-cohort.md`` for what the realism rests on and its limits.
"""

from strongroom.cohort.synth.demographics import CENSOR
from strongroom.cohort.synth.generator import STAGES, synthesise

__all__ = ["CENSOR", "STAGES", "synthesise"]
