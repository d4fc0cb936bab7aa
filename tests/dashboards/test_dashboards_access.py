"""Access rules: who sees which pupil, and how reviews carry over between terms."""

from __future__ import annotations

from datetime import UTC, datetime

from dashboards.access import Principal, active_for_network, effective_review, may_view_pupil
from dashboards.store import Session, User

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _principal(role: str, networks: set[str] = frozenset(), schools: set[str] = frozenset()) -> Principal:
    return Principal(User(1, "u", "U", role, True), frozenset(networks), frozenset(schools),
                     Session("h", 1, "c", "local", NOW, NOW))


FLAG = {"pupil_id": "p1", "term": "2025/26-H1", "status": "fortsat", "network_id": "N001", "school_code": "S0001"}
CONFIRMED_EARLIER = {"term": "2024/25-H2", "decision": "bekraeftet"}


def test_reviews_carry_over_only_while_the_pupil_stays_on_the_list() -> None:
    assert effective_review(FLAG, CONFIRMED_EARLIER) == CONFIRMED_EARLIER
    assert effective_review({**FLAG, "status": "ny"}, CONFIRMED_EARLIER) is None
    same_term = {"term": "2025/26-H1", "decision": "afvist"}
    assert effective_review({**FLAG, "status": "ny"}, same_term) == same_term
    assert effective_review(FLAG, None) is None


def test_network_sees_confirmed_flags_and_never_dismissed_ones() -> None:
    assert active_for_network(FLAG, None, require_review=True) is False
    assert active_for_network(FLAG, None, require_review=False) is True
    assert active_for_network(FLAG, {"decision": "familie_kontaktet"}, require_review=True) is True
    assert active_for_network(FLAG, {"decision": "afvist"}, require_review=False) is False


def test_pupil_page_rules_per_role() -> None:
    confirmed = {"term": FLAG["term"], "decision": "bekraeftet"}
    assert may_view_pupil(_principal("consultant", schools={"S0001"}), FLAG, None, True).allowed
    assert not may_view_pupil(_principal("consultant", schools={"S0002"}), FLAG, confirmed, True).allowed
    assert may_view_pupil(_principal("network_member", networks={"N001"}), FLAG, confirmed, True).allowed
    assert not may_view_pupil(_principal("network_member", networks={"N001"}), FLAG, None, True).allowed
    assert not may_view_pupil(_principal("network_member", networks={"N002"}), FLAG, confirmed, True).allowed
    for role in ("steward", "admin"):
        assert not may_view_pupil(_principal(role, {"N001"}, {"S0001"}), FLAG, confirmed, True).allowed
    assert not may_view_pupil(_principal("consultant", schools={"S0001"}), None, None, True).allowed
    gone = {**FLAG, "status": "ikke_laengere"}
    assert may_view_pupil(_principal("network_member", networks={"N001"}), gone, confirmed, True).allowed
    assert not may_view_pupil(_principal("network_member", networks={"N001"}), gone, None, False).allowed
    decision = may_view_pupil(_principal("consultant", schools={"S0001"}), FLAG, None, True)
    assert "S0001" in decision.purpose
