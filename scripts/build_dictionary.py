"""Rebuild the shipped data dictionary from UK Biobank's public Showcase schema files.

    python scripts/build_dictionary.py [--schema ../shared/research-data/ukb-schema]

Field facts (names, value types, codings, instances, arrays, participant counts, means and SDs)
come from the Showcase files; roles and recorded precision come from
src/strongroom/cohort/data/fields.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from strongroom.cohort.showcase import build_dictionary, load_curation

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src/strongroom/cohort/data/dictionary.json.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schema", type=Path, default=ROOT.parent / "shared/research-data/ukb-schema")
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
    print(f"wrote {args.out}: {len(dictionary)} fields, {len(dictionary.codings)} codings")


if __name__ == "__main__":
    main()
