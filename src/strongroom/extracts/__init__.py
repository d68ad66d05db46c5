"""Traceable record-level extracts: pseudonyms, fingerprint codes and carriers, decoys,
manifests, and attribution of a leaked file to its recipient.

| module | holds |
|---|---|
| ``codes.py`` | the keyed Tardos code: per-cell biases (system-wide) and symbols (per extract) |
| ``carriers.py`` | which columns may carry marks, their amplitude, embedding on typed values |
| ``accuse.py`` | reading marks back (rounding- and noise-aware), scores, the bound, the verdict |
| ``multiset.py`` | reading marks from each column's values alone, with no row linked |
| ``models.py``, ``manifest.py`` | the custodian's record of every extract |
| ``tables.py``, ``linkage.py`` | reading suspect files; linking their rows to the cohort by value |
| ``periods.py`` | recognising dates a suspect truncated to the month, quarter, year or week |
| ``decoys.py``, ``stix.py`` | decoy participants; STIX 2.1 indicators for threat intelligence |
| ``service.py`` | ``create_extract`` and ``attribute``, as the CLI and the server call them |

Fingerprints exist only on the way out of an extract: nothing in the enclave imports this
package.
"""
