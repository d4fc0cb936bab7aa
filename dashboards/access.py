"""Who may see what: roles, assignments, and the purpose recorded with each look at a child.

* ``network_member``: the current list of the networks assigned to them, and the pages of the
  pupils on it whose flag is active for the network (reasons, tier, trajectory, decisions).
* ``consultant`` (UU-vejleder): every flag at the schools assigned to them, the full
  explanation, and the review form.
* ``steward``: runs, validation, drift, model cards; aggregates only, never a pupil row.
* ``admin``: users and assignments, and the audit log; no pupil data either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboards.labels import ACTIVE_DECISIONS
from dashboards.store import Session, User

PUPIL_ROLES = frozenset({"network_member", "consultant"})
STEWARD_ROLES = frozenset({"steward", "admin"})


@dataclass(frozen=True)
class Principal:
    """The person behind a request, with their assignments and session."""

    user: User
    networks: frozenset[str]
    schools: frozenset[str]
    session: Session

    @property
    def username(self) -> str:
        """The user name."""
        return self.user.username

    @property
    def role(self) -> str:
        """The role."""
        return self.user.role


@dataclass(frozen=True)
class Decision:
    """The outcome of an access check: allowed or not, and why (for the audit log)."""

    allowed: bool
    purpose: str


def effective_review(flag: dict[str, Any], latest: dict[str, Any] | None) -> dict[str, Any] | None:
    """The review that applies to a flag, carried over from earlier terms where it may be.

    A review made for the flag's term applies. A review from an earlier term carries over
    while the pupil has stayed on the list without a break (status ``fortsat``); a pupil who
    comes back on the list (status ``ny``) needs a fresh review.

    Args:
        flag: The flag (``term``, ``status``).
        latest: The pupil's latest review made for this term or an earlier one.

    Returns:
        The review that applies, or None.
    """
    if latest is None:
        return None
    if latest["term"] == flag["term"]:
        return latest
    if flag.get("status") == "fortsat":
        return latest
    return None


def active_for_network(flag: dict[str, Any], review: dict[str, Any] | None, require_review: bool) -> bool:
    """Whether the network sees a flag as active.

    Args:
        flag: The flag.
        review: The effective review (see :func:`effective_review`).
        require_review: The municipality's ``flagging.require_review``: show a flag to the
            network only once a UU consultant has confirmed it.

    Returns:
        False for a dismissed flag; otherwise True when a review confirmed it, or when no
        review is required.
    """
    if review is not None and review["decision"] not in ACTIVE_DECISIONS:
        return False
    if require_review:
        return review is not None
    return True


def may_view_network(principal: Principal, network_id: str) -> Decision:
    """A network's list: network members of that network."""
    if principal.role == "network_member" and network_id in principal.networks:
        return Decision(True, f"Netværkets liste (netværk {network_id})")
    return Decision(False, f"Ikke medlem af netværk {network_id}")


def may_view_pupil(
    principal: Principal,
    flag: dict[str, Any] | None,
    review: dict[str, Any] | None,
    require_review: bool,
) -> Decision:
    """A pupil's page.

    Args:
        principal: Who asks.
        flag: The pupil's flag in the term shown (None when not on any list).
        review: The effective review of that flag.
        require_review: Whether the network sees only reviewed flags.

    Returns:
        The decision with its purpose (allowed) or reason (denied).
    """
    if principal.role not in PUPIL_ROLES:
        return Decision(False, f"Rollen {principal.role} ser ingen elevdata")
    if flag is None:
        return Decision(False, "Eleven er ikke på en liste, som brugeren arbejder med")
    if principal.role == "consultant":
        school = flag.get("school_code")
        if school in principal.schools:
            return Decision(True, f"UU-vurdering af flag (skole {school})")
        return Decision(False, f"Skole {school} er ikke tildelt vejlederen")
    network = flag.get("network_id")
    if network not in principal.networks:
        return Decision(False, f"Ikke medlem af netværk {network}")
    if flag.get("status") == "ikke_laengere":
        if flag.get("in_network") is False:
            # Moved to another network (or left the grades): the data now belongs to that network.
            return Decision(False, f"Eleven er ikke længere i netværk {network}")
        if review is not None and review["decision"] in ACTIVE_DECISIONS:
            return Decision(True, f"Opfølgning i netværket (netværk {network})")
        return Decision(False, "Eleven er ikke længere på netværkets liste")
    if not active_for_network(flag, review, require_review):
        return Decision(False, "Flaget er ikke vurderet og bekræftet af UU endnu")
    return Decision(True, f"Netværksdrøftelse (netværk {network})")


def may_review(principal: Principal, flag: dict[str, Any] | None) -> Decision:
    """Recording a review: UU consultants of the pupil's school."""
    if principal.role != "consultant" or flag is None:
        return Decision(False, "Kun UU-vejledere vurderer flag")
    if flag.get("school_code") not in principal.schools:
        return Decision(False, f"Skole {flag.get('school_code')} er ikke tildelt vejlederen")
    return Decision(True, f"UU-vurdering af flag (skole {flag.get('school_code')})")


def is_steward(principal: Principal) -> bool:
    """Steward pages (aggregates) and the audit log: stewards and admins."""
    return principal.role in STEWARD_ROLES
