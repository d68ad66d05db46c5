"""Analyses over a dataset definition, each returning cells that know their participants.

:func:`~strongroom.enclave.analyses.spec.parse_spec` checks a researcher's request and
:func:`~strongroom.enclave.analyses.run.run` runs it over a definition's frame. The modules
hold the analyses by family: ``tables`` (frequency, crosstab, histogram), ``summary``,
``regression`` (OLS, logistic), ``survival`` (Kaplan–Meier, Cox) and ``correlation``;
``frame`` the checks and grouping they share.
"""
