"""Danish (and English) wording shared by the flag lists, their exports and ``ews explain``.

Codes are stored in the warehouse; these labels are what people read.
"""

from __future__ import annotations

#: Printed on every list, every page and every export.
DISCLAIMER_DA = (
    "Listen er et screeningssignal til faglig vurdering — ikke en vurdering af eller afgørelse "
    "om et barn."
)
DISCLAIMER_EN = (
    "The list is a screening signal for professional judgement — not an assessment of, or a "
    "decision about, a child."
)
#: Short form for page footers and single explanations.
SIGNAL_SHORT_DA = "Screeningssignal til faglig vurdering"
#: Short label of a rule list (``list_basis = 'regel:<rule>'``), for footers and cells.
RULE_LIST_SHORT_DA = "Regelliste"


def list_basis_da(list_basis: str | None) -> str | None:
    """What a list is based on, in Danish, when it is not the model's (None for the model's).

    Args:
        list_basis: ``flags_pupil_term.list_basis``: ``model`` or ``regel:<rule>``.

    Returns:
        For a rule list a sentence naming the rule and why it stands in; None otherwise.
    """
    if not list_basis or not str(list_basis).startswith("regel:"):
        return None
    from models.gate import RULE_NAMES_DA

    rule = str(list_basis).split(":", 1)[1]
    return (f"REGELLISTE: Listen er valgt efter {RULE_NAMES_DA.get(rule, rule)}, ikke af modellen. "
            "Modellen bestod ikke kravet for at blive offentliggjort (slå den bedste regel og være "
            "kalibreret på de seneste kendte årgange). Der vises derfor ingen risiko fra modellen.")

STATUS_DA: dict[str, str] = {
    "ny": "Ny",
    "fortsat": "Fortsat",
    "ikke_laengere": "Ikke længere",
}
STATUS_EN: dict[str, str] = {
    "ny": "New",
    "fortsat": "Still flagged",
    "ikke_laengere": "No longer flagged",
}

TRAJECTORY_DA: dict[str, str] = {
    "stigende": "Stigende",
    "faldende": "Faldende",
    "stabil": "Stabil",
    "ingen_tidligere": "Ingen tidligere score",
}
TRAJECTORY_EN: dict[str, str] = {
    "stigende": "Rising",
    "faldende": "Falling",
    "stabil": "Stable",
    "ingen_tidligere": "No earlier score",
}

PATH_PATTERN_DA: dict[str, str] = {
    "tidlig_starter": "Tidlig starter",
    "sen_starter": "Sen starter",
}
PATH_PATTERN_EN: dict[str, str] = {
    "tidlig_starter": "Early starter",
    "sen_starter": "Late starter",
}

#: Discipline codes -> (Danish, English). Which families point to which disciplines is in
#: :data:`flags.reasons.FAMILY_DISCIPLINES`.
DISCIPLINE_DA: dict[str, str] = {
    "skole": "skolen",
    "sundhedsplejerske": "sundhedsplejerske",
    "ppr": "PPR",
    "laerere": "lærere",
    "socialraadgiver": "socialrådgiver",
    "uu": "UU-vejleder",
}
DISCIPLINE_EN: dict[str, str] = {
    "skole": "the school",
    "sundhedsplejerske": "health nurse",
    "ppr": "educational psychology (PPR)",
    "laerere": "teachers",
    "socialraadgiver": "social worker",
    "uu": "UU youth guidance",
}

SELECTION_MODE_DA: dict[str, str] = {
    "capacity": "de {capacity} elever med højest risiko (netværkets kapacitet)",
    "threshold": "alle elever med risiko på mindst {threshold} %",
    "capacity_and_threshold": (
        "op til {capacity} elever (netværkets kapacitet) med risiko på mindst {threshold} %"
    ),
}
SELECTION_MODE_EN: dict[str, str] = {
    "capacity": "the {capacity} pupils with the highest risk (the network's capacity)",
    "threshold": "every pupil with a risk of at least {threshold} %",
    "capacity_and_threshold": (
        "up to {capacity} pupils (the network's capacity) with a risk of at least {threshold} %"
    ),
}


def join_da(items: list[str]) -> str:
    """``['a', 'b', 'c']`` -> ``'a, b og c'``."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " og " + items[-1]


def format_number_da(value: float, decimals: int = 1) -> str:
    """A number with Danish decimal comma, trailing zeros removed (``1.50`` -> ``'1,5'``).

    Args:
        value: The number.
        decimals: Decimals at most.

    Returns:
        The text; ``-0`` is shown as ``0``.
    """
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text.replace(".", ",")


def format_percent_da(risk: float | None) -> str:
    """A probability as a whole percent, Danish style (``0.314`` -> ``'31 %'``)."""
    if risk is None or risk != risk:  # NaN
        return ""
    return f"{round(risk * 100):d} %"


#: Who a list file is for. The run writes only the UU consultant's working list; the
#: network's list is served by the review app from the flags a UU consultant has confirmed.
AUDIENCE_CONSULTANT = "uu"
AUDIENCE_NETWORK = "netvaerk"

#: Title of a list file, per audience.
LIST_TITLE_DA: dict[str, str] = {
    AUDIENCE_CONSULTANT: "Arbejdsliste til UU-vejlederen",
    AUDIENCE_NETWORK: "Flagliste til netværket",
}
#: What the list is for and what happens before anyone acts on it, per audience.
LIST_PURPOSE_DA: dict[str, str] = {
    AUDIENCE_CONSULTANT: (
        "Vurdering før kontakt: UU-vejlederen vurderer hvert flag i appen (bekræfter eller "
        "afviser), før netværket ser det, og før nogen kontakter eleven eller familien. Listen "
        "er UU-vejlederens arbejdsliste og gives ikke videre til netværket."
    ),
    AUDIENCE_NETWORK: (
        "Listen viser kun flag, som en UU-vejleder har vurderet og bekræftet, med UU-vejlederens "
        "vurdering og trinnet på indsatstrappen. Flag, der afventer vurdering, er kun talt med."
    ),
}
#: The network's list when the municipality shows flags before review (``require_review: false``).
LIST_PURPOSE_UNREVIEWED_DA = (
    "Kommunen har valgt at vise flag, før en UU-vejleder har vurderet dem "
    "(flagging.require_review: false). Kolonnen UU-vurdering viser, om flaget er vurderet. "
    "Afviste flag er ikke med."
)
#: The last line of "how to read the list", per audience.
LIST_BEFORE_CONTACT_DA: dict[str, str] = {
    AUDIENCE_CONSULTANT: (
        "Vurdér hvert flag i appen, før netværket ser det. Ingen kontakter familien på grundlag "
        "af denne liste."
    ),
    AUDIENCE_NETWORK: (
        "Netværket drøfter hver elev fagligt og aftaler, hvem der tager kontakt til familien, og "
        "hvordan."
    ),
}
#: Page footer / print header naming the audience.
LIST_AUDIENCE_NOTE_DA: dict[str, str] = {
    AUDIENCE_CONSULTANT: "Til UU-vejlederen: vurderes før kontakt, gives ikke til netværket",
    AUDIENCE_NETWORK: "Til netværkets medlemmer",
}
#: Shown where a review is missing on a list that shows unreviewed flags.
NOT_REVIEWED_DA = "Ikke vurderet endnu"
