"""Strongroom: a trusted research environment for sensitive health cohorts."""

__version__ = "0.1.0"
