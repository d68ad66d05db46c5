"""The output check's decisions: per rule, per cell, and for the whole output.

Order of severity: RELEASE < SUPPRESS (release with the named cells hidden) < REVIEW (two
output checkers decide) < BLOCK. An output's verdict is the most severe of its findings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    RELEASE = "release"
    SUPPRESS = "release_with_suppression"
    REVIEW = "review"
    BLOCK = "block"


SEVERITY: dict[Verdict, int] = {Verdict.RELEASE: 0, Verdict.SUPPRESS: 1, Verdict.REVIEW: 2,
                                Verdict.BLOCK: 3}
# each verdict as a badge says it to a person (the API keeps the values above)
SHORT_WORDS: dict[Verdict, str] = {Verdict.RELEASE: "release",
                                   Verdict.SUPPRESS: "release, cells hidden",
                                   Verdict.REVIEW: "needs review", Verdict.BLOCK: "blocked"}


def rule_words(rule: str) -> str:
    """A rule's stable name as a person reads it ("secondary_suppression": "secondary
    suppression")."""
    return rule.replace("_", " ").replace(".", ": ")


# findings whose words depend on nothing in the data (the ration's; a job's own file's): a
# withheld report shows its requester these and nothing else
CONSTANT = frozenset({"answers", "job_file"})


@dataclass(frozen=True)
class Finding:
    """One rule's decision about one cell (``cell`` None: about the whole output)."""

    rule: str  # the rule's stable name, as in rules.yaml ("threshold", "dominance_p" …)
    verdict: Verdict
    reason: str  # plain words, never a participant's value
    cell: int | None = None  # index into Result.cells

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "verdict": self.verdict.value, "reason": self.reason,
                "cell": self.cell}


@dataclass
class CheckReport:
    """Everything the check decided, bound to the rules and versions it applied."""

    verdict: Verdict
    findings: list[Finding]
    suppressed: set[int] = field(default_factory=set)  # cells hidden (primary + secondary)
    rules_version: str = ""  # the YAML's version and digest
    thresholds: dict[str, Any] = field(default_factory=dict)  # effective values applied
    # cells left out of the output altogether, labels included (a subset of ``suppressed``):
    # their labels are held by fewer than the threshold of participants
    removed: set[int] = field(default_factory=set)
    # the requester's ration of answers was spent (strongroom.outputs.answers): they see only
    # that it went to the output checkers, never what the check found
    withheld: bool = False

    @staticmethod
    def worst(findings: list[Finding]) -> Verdict:
        if not findings:
            return Verdict.RELEASE
        return max((f.verdict for f in findings), key=SEVERITY.__getitem__)

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value,
                "findings": [f.as_dict() for f in self.findings],
                "suppressed": sorted(self.suppressed),
                "rules_version": self.rules_version, "thresholds": self.thresholds,
                "removed": sorted(self.removed), "withheld": self.withheld}

    def shown(self) -> CheckReport:
        """What the requester may read: all of it, or, withheld, that it waits for people."""
        if not self.withheld:
            return self
        return CheckReport(Verdict.REVIEW, [f for f in self.findings if f.rule in CONSTANT],
                           rules_version=self.rules_version, thresholds=self.thresholds,
                           withheld=True)
