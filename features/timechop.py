"""Time splitting: as-of dates, training cohorts, evaluation cohorts and training rows.

One small, pure module (no database, no I/O), like dssg/triage's timechop. Leakage from the
future is the classic bug of early-warning models, so the rules are expressed once, here:

* A **row** is a (pupil, as-of date) pair. Its features use only data dated strictly before
  the as-of date (``features/build.py``; checked by :mod:`features.leakage`).
* A **cohort** is the school year in which a pupil's outcome was assessed (the grade-8 UPV,
  the leaving exam, or the municipality's designation).
* A cohort's outcome is **known** on date ``d`` when every label of the cohort was assessed
  before ``d``. A model for a term may learn only from cohorts known before the term's as-of
  date.
* Of the known cohorts the latest ``evaluation_cohorts`` are **held out**: the model never
  sees them, and all its metrics are measured on them, per grade.
* A pupil contributes a row for an as-of date only while in a training grade (5-8) and only
  before the outcome was assessed (``as_of_date < assessed_date``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from ews.terms import Term, terms_between


class LeakageError(Exception):
    """A split or a row would let the model see information dated after its as-of date."""


class NotEnoughHistoryError(Exception):
    """There are too few cohorts with known outcomes to train and evaluate a model."""


@dataclass(frozen=True)
class AsOf:
    """A term and its as-of date."""

    term: str
    as_of_date: date


@dataclass(frozen=True)
class Split:
    """Which cohorts a model for one term trains on and is evaluated on.

    Attributes:
        term: The term the model is for.
        as_of_date: Its as-of date; every label used was assessed before it.
        training_cohorts: School years whose outcomes the model learns from (oldest first).
        evaluation_cohorts: Later school years held out for evaluation (oldest first).
        label_cutoff: The latest assessment date among the labels used (training and
            evaluation); always before ``as_of_date``.
    """

    term: str
    as_of_date: date
    training_cohorts: tuple[str, ...]
    evaluation_cohorts: tuple[str, ...]
    label_cutoff: date

    @property
    def training_window(self) -> tuple[str, str]:
        """First and last training cohort."""
        return self.training_cohorts[0], self.training_cohorts[-1]


def term_as_of_dates(first: Term, last: Term, as_of_of: Callable[[Term], date]) -> list[AsOf]:
    """The as-of date of every term from ``first`` to ``last``.

    Args:
        first: First term.
        last: Last term (included).
        as_of_of: A callable ``Term -> date`` (e.g. ``config.terms.as_of_date``).

    Returns:
        One :class:`AsOf` per term, oldest first.
    """
    return [AsOf(str(term), as_of_of(term)) for term in terms_between(first, last)]


def cohort_known_dates(labels: pd.DataFrame) -> pd.Series:
    """The date from which each cohort's outcome is fully known.

    Args:
        labels: ``cohort`` and ``assessed_date`` per pupil.

    Returns:
        Cohort -> the day after its last assessment, sorted by cohort.
    """
    last = pd.to_datetime(labels["assessed_date"]).groupby(labels["cohort"]).max()
    return (last + pd.Timedelta(days=1)).dt.date.sort_index()


def plan_split(labels: pd.DataFrame, term: str, as_of_date: date, evaluation_cohorts: int) -> Split:
    """Choose training and evaluation cohorts for a model used on ``as_of_date``.

    Args:
        labels: Outcome labels of one definition: ``cohort`` and ``assessed_date``.
        term: The term the model is for.
        as_of_date: Its as-of date.
        evaluation_cohorts: How many of the latest known cohorts to hold out.

    Returns:
        The split.

    Raises:
        NotEnoughHistoryError: When fewer than ``evaluation_cohorts + 1`` cohorts are known
            before the as-of date.
    """
    known = cohort_known_dates(labels)
    known = known[known <= as_of_date]
    cohorts = sorted(known.index)
    if len(cohorts) < evaluation_cohorts + 1:
        raise NotEnoughHistoryError(
            f"term {term}: only {len(cohorts)} outcome cohort(s) {cohorts} were fully assessed "
            f"before the as-of date {as_of_date}; training needs at least one cohort besides "
            f"the {evaluation_cohorts} held out for evaluation (model.evaluation_cohorts)"
        )
    training = tuple(cohorts[: len(cohorts) - evaluation_cohorts])
    evaluation = tuple(cohorts[len(cohorts) - evaluation_cohorts:])
    cutoff = max(known[cohorts]) - timedelta(days=1)
    return Split(term, as_of_date, training, evaluation, cutoff)


def required_as_of_dates(all_as_of: Sequence[AsOf], split: Split) -> list[AsOf]:
    """The as-of dates whose features a split needs (before the split's label cutoff).

    Args:
        all_as_of: Candidate as-of dates (e.g. every term since the first school year).
        split: The split.

    Returns:
        Those before the split's label cutoff, oldest first.
    """
    return [a for a in sorted(all_as_of, key=lambda a: a.as_of_date) if a.as_of_date <= split.label_cutoff]


def label_rows(
    pupil_dates: pd.DataFrame,
    labels: pd.DataFrame,
    cohorts: Sequence[str],
    grades: Sequence[int],
) -> pd.DataFrame:
    """Attach outcomes to (pupil, as-of date) rows of the given cohorts.

    A row is kept only when the pupil's outcome belongs to one of ``cohorts``, the pupil was
    in one of ``grades`` on the as-of date, and the as-of date is before the assessment.

    Args:
        pupil_dates: ``pupil_id``, ``as_of_date`` and ``grade`` (other columns are kept).
        labels: ``pupil_id``, ``cohort``, ``assessed_date``, ``outcome`` (one row per pupil).
        cohorts: Cohorts to keep.
        grades: Grades to keep.

    Returns:
        The rows with ``cohort``, ``assessed_date`` and ``outcome`` (0/1) added, sorted by
        as-of date and pupil.

    Raises:
        LeakageError: When ``labels`` has more than one row for a pupil.
    """
    if labels["pupil_id"].duplicated().any():
        raise LeakageError("labels: more than one outcome row for a pupil; pick one per pupil first")
    chosen = labels[labels["cohort"].isin(list(cohorts))][["pupil_id", "cohort", "assessed_date", "outcome"]]
    rows = pupil_dates.merge(chosen, on="pupil_id", how="inner")
    as_of = pd.to_datetime(rows["as_of_date"])
    assessed = pd.to_datetime(rows["assessed_date"])
    keep = rows["grade"].isin(list(grades)) & (as_of < assessed)
    rows = rows[keep].assign(outcome=rows.loc[keep, "outcome"].astype(int))
    return rows.sort_values(["as_of_date", "pupil_id"], kind="stable").reset_index(drop=True)


def assert_split_is_causal(split: Split, labels: pd.DataFrame) -> None:
    """Check that no label used by a split was assessed on or after its as-of date.

    Args:
        split: The split.
        labels: The labels it was planned from.

    Raises:
        LeakageError: Naming the cohort whose outcome was not yet known.
    """
    overlap = set(split.training_cohorts) & set(split.evaluation_cohorts)
    if overlap:
        raise LeakageError(f"cohorts {sorted(overlap)} are both trained on and held out")
    if split.training_cohorts and split.evaluation_cohorts and (
        max(split.training_cohorts) >= min(split.evaluation_cohorts)
    ):
        raise LeakageError("evaluation cohorts must be later than every training cohort")
    used = labels[labels["cohort"].isin(split.training_cohorts + split.evaluation_cohorts)]
    late = used[pd.to_datetime(used["assessed_date"]) >= pd.Timestamp(split.as_of_date)]
    if len(late):
        cohorts = sorted(late["cohort"].unique())
        raise LeakageError(
            f"term {split.term}: cohort(s) {cohorts} have outcomes assessed on or after the as-of "
            f"date {split.as_of_date}; they cannot be used by a model for this term"
        )
