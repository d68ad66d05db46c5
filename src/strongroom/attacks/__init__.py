"""Disclosure attacks on the output check, run the way an approved researcher would run them.

:mod:`.catalogue` lists the attacks by kind (the seven kinds of leak of
docs/explanation/output-check.md), each with the requests it makes and how it would compute a
participant's value from what is released; :mod:`.honest` lists safe analyses that must keep
their automatic release; :mod:`.runner` runs both against a real platform, every attack in a
project of its own, with the ground truth read custodian-side. The tests
(tests/integration/test_disclosure_attacks.py) and the benchmark (benchmarks/disclosure.py)
run the same catalogue.
"""
