"""The review app (``ews serve``): flag lists, pupil pages, reviews, audit and steward pages.

The app reads the tables the pipeline wrote (the live warehouse, opened read-only per
request) and keeps its own state (users, sessions, reviews, audit log) in ``app.sqlite``.
It computes no model output of its own.
"""
