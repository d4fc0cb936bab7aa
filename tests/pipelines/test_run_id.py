"""A run id is a content hash of the run's inputs, and never reads as a CPR number."""

from __future__ import annotations

import hashlib
import re
from datetime import date

from ews.pseudonym import CPR_LIKE, mask_cpr
from ews.terms import Term
from pipelines.flows import make_run_id

TERM = Term.parse("2025/26-H1")
AS_OF = date(2025, 11, 1)


def _snapshot_with_a_decimal_hash() -> str:
    """A data snapshot for which the inputs' hex digest starts with ten decimal digits."""
    for n in range(100_000):
        snapshot = f"snapshot-{n}"
        digest = hashlib.sha256(f"{TERM}|{AS_OF}|cfg|{snapshot}|code".encode()).hexdigest()
        if digest[:10].isdigit():
            return snapshot
    raise AssertionError("no such snapshot in 100,000 tries")  # about 1 in 110 has one


def test_a_run_id_whose_hash_is_all_digits_does_not_read_as_a_cpr_number() -> None:
    snapshot = _snapshot_with_a_decimal_hash()
    run_id = make_run_id(TERM, AS_OF, "cfg", snapshot, "code")
    assert re.fullmatch(r"2025-26-H1-[a-p]{10}", run_id)
    assert not CPR_LIKE.search(run_id) and mask_cpr(run_id) == run_id
    assert f"runs/{run_id}/manifest.json" == mask_cpr(f"runs/{run_id}/manifest.json")


def test_the_same_inputs_give_the_same_run_id_and_other_inputs_another() -> None:
    first = make_run_id(TERM, AS_OF, "cfg", "snapshot", "code")
    assert make_run_id(TERM, AS_OF, "cfg", "snapshot", "code") == first
    others = {make_run_id(TERM, AS_OF, "cfg", "snapshot", "code2"),
              make_run_id(TERM, AS_OF, "cfg2", "snapshot", "code"),
              make_run_id(TERM, AS_OF, "cfg", "snapshot2", "code"),
              make_run_id(Term.parse("2025/26-H2"), AS_OF, "cfg", "snapshot", "code")}
    assert first not in others and len(others) == 4
