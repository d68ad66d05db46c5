"""The enclave: per-project views, dataset definitions and analyses, run next to the data.

Nothing here returns participant-level rows. Every analysis returns a
:class:`~strongroom.enclave.results.Result` whose cells keep, server-side, the distinct
participants behind each number; the output check (:mod:`strongroom.outputs`) reads them.
"""
