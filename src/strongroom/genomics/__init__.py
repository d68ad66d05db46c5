"""Genotypes in the strongroom: simulation, formats, the encrypted store, GWAS and the genetic
disclosure rules.

Shared conventions (every module here keeps them):

- A variant table is a Polars frame with columns ``chrom`` (String), ``pos`` (Int64), ``id``
  (String), ``ref`` (String) and ``alt`` (String), in file order.
- A dosage is the count of the ``alt`` allele, 0 to 2, as float32, NaN where missing. In PLINK 1
  terms ``alt`` is allele 1 (the ``.bim``'s fifth column), which is what plink2 counts.
- Samples are participants, identified by the custodian's ``eid``; genotype matrices are held
  samples × variants and streamed in chunks of variants, never whole.
"""
