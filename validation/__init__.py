"""Validation: the data contracts every export must satisfy before a row reaches the warehouse.

- ``errors``: :class:`~validation.errors.FileLevelError`, the one error that stops a run.
- ``parsing``: raw strings to typed canonical columns (CPR pseudonymised first).
- ``contracts``: the checks per source kind, as Great Expectations expectations.
- ``engine``: runs them with Great Expectations' pandas path.
- ``gate``: :func:`~validation.gate.validate_source`: valid rows, quarantine, results.
- ``report``: the HTML report, the Prefect artifact's markdown and the manifest's part.

See ``docs/data-contract.md``. Nothing here knows Prefect or opens the warehouse.
"""
