"""Re-identification risk, anonymisation, and differential privacy.

| module | holds |
|---|---|
| ``classes.py`` | equivalence classes: quasi-identifier columns to class ids, vectorised |
| ``sensitive.py`` | l-diversity (distinct, entropy, recursive) and t-closeness per class |
| ``estimators.py`` | population uniqueness (Pitman, Zayatz, SNB, Dankar's rule), journalist risk |
| ``risk.py`` | the risk report for any table, with an explicit sampling frame; JSON and text |
| ``hierarchies.py`` | generalisation hierarchies from the data dictionary, as data |
| ``anonymise.py`` | the lattice search for the least loss meeting k, l, t; suppression |
| ``gate.py`` | the check every record-level extract passes before it is written |
| ``files.py`` | reading a table file for ``strongroom risk`` and ``strongroom anonymise`` |
| ``hierarchy_files.py`` | hierarchies from files in ARX's CSV layout, checked against the table |
| ``dp.py``, ``budget.py``, ``service.py`` | differential privacy and its budget ledger |
| ``mixed_access.py`` | one person's exact and DP access to the same fields across projects |

Missing values are a value of their own everywhere (a blank year of birth is as telling as
any year); see docs/explanation/reidentification-risk.md.
"""
