"""Rebuild the shipped data dictionary from UK Biobank's public Showcase schema files.

    python scripts/build_dictionary.py [--schema ../shared/research-data/ukb-schema]

Field facts (names, value types, codings, instances, arrays, participant counts, means and SDs)
come from the Showcase files; roles and recorded precision come from
src/strongroom/cohort/data/fields.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from strongroom.cohort.dictionary import ROLE_DESCRIPTIONS, Dictionary
from strongroom.cohort.showcase import build_dictionary, load_curation

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src/strongroom/cohort/data/dictionary.json.gz"
DOC = ROOT / "docs/reference/data-dictionary.md"

DOC_HEAD = """# Data dictionary

The fields of the shipped dictionary (`src/strongroom/cohort/data/dictionary.json.gz`), which the
synthetic cohort generates. Built by `make dictionary` (`scripts/build_dictionary.py`) from UK
Biobank's public Showcase files; roles and recorded precision come from
`src/strongroom/cohort/data/fields.yaml`. This page is generated: do not edit it by hand.

Every field has: its UK Biobank field ID, name, value type, unit, coding, instances and array
slots, missing-value codes (from its coding), a **role** and a **precision**:

| role | meaning |
|---|---|
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schema", type=Path,
                        default=ROOT.parent / "shared/research-data/ukb-schema")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    curation = load_curation()
    dictionary = build_dictionary(
        args.schema / "Data_Dictionary_Showcase.tsv",
        args.schema / "tofu_df_lkp_encodings.csv.gz",
        curation.keys(),
        stats=args.schema / "tofu_df_showcase_desc_stats.csv.gz",
        curation=curation,
    )
    dictionary.save(args.out)
    DOC.write_text(render_doc(dictionary))
    print(f"wrote {args.out}: {len(dictionary)} fields, {len(dictionary.codings)} codings")


def render_doc(dictionary: Dictionary) -> str:
    lines = [DOC_HEAD.rstrip("\n")]
    lines += [f"| `{role.value}` | {text} |" for role, text in ROLE_DESCRIPTIONS.items()]
    lines += ["", "Precision is the number of decimals UK Biobank records for a numeric field.", "",
              "| field | name | type | unit | coding | instances × arrays | role | precision "
              "| missing codes | Showcase mean (SD) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for f in dictionary:
        stats = f"{f.mean:g} ({f.sd:g})" if f.mean is not None and f.sd is not None else ""
        missing = ", ".join(dictionary.missing_codes(f))
        lines.append(
            f"| {f.field_id} | {f.name} | {f.value_type.value} | {f.unit} | {f.coding_id or ''} "
            f"| {f.instances} × {f.arrays} | {f.role.value} "
            f"| {'' if f.precision is None else f.precision} | {missing} | {stats} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
