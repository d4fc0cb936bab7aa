"""Alle skal med: early-warning screening from grade 5 (shared foundation).

This package holds what every stage shares: the settings, the municipality config, the term
calendar, the canonical source schemas and the warehouse module.
"""

__version__ = "0.1.0"
