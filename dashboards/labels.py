"""Danish words the app shows: roles, review decisions, flag statuses and feature names."""

from __future__ import annotations

import re

from flags.followup import ACTIVE_DECISIONS as _ACTIVE_DECISIONS

ROLES: dict[str, str] = {
    "network_member": "Netværksmedlem",
    "consultant": "UU-vejleder",
    "steward": "Dataansvarlig",
    "admin": "Administrator",
}

#: Review decisions a UU consultant can record (code -> Danish label).
DECISIONS: dict[str, str] = {
    "bekraeftet": "Bekræftet: drøftes i netværket",
    "afvist": "Afvist",
    "familie_kontaktet": "Familien er kontaktet",
    "henvist_netvaerksmoede": "Henvist til netværksmøde",
    "indsatstrappe": "Trin på indsatstrappen",
}

#: Decisions that make a flag active on the network's list (defined once, by the follow-up
#: the warehouse keeps: ``flags.followup``).
ACTIVE_DECISIONS = _ACTIVE_DECISIONS

#: Coded reasons for dismissing a flag (no free text about a child is stored).
DISMISS_REASONS: dict[str, str] = {
    "kendt_indsats_i_gang": "Eleven er kendt, og en indsats er allerede i gang",
    "datafejl": "Forklaringen bygger på fejl eller mangler i data",
    "forbigaaende": "Forbigående forhold (fx en periode med sygdom)",
    "faglig_vurdering": "Skolens og vejlederens faglige vurdering er en anden",
}

FLAG_STATUSES: dict[str, str] = {
    "ny": "Ny på listen",
    "fortsat": "Fortsat på listen",
    "ikke_laengere": "Ikke længere på listen",
}

RUN_STATUSES: dict[str, str] = {
    "running": "Kører",
    "succeeded": "Gennemført",
    "failed": "Fejlet",
    "killed": "Afbrudt (processen var væk)",
}

AUDIT_ACTIONS: dict[str, str] = {
    "login": "Login",
    "logout": "Log ud",
    "view_list": "Så liste",
    "view_pupil": "Så elevside",
    "export": "Hentede eksport",
    "review": "Registrerede vurdering",
    "view_steward": "Så driftsside",
    "view_audit": "Så adgangsloggen",
    "admin": "Brugeradministration",
    "unlock": "Ophævede loginspærring",
    "anonymous": "Forsøg uden login",
    "csrf": "Formular uden gyldigt CSRF-token",
    "invalid_request": "Ugyldig forespørgsel",
}

OUTCOMES: dict[str, str] = {"allowed": "Tilladt", "denied": "Afvist"}

#: What the admin page says when the app store refuses a change (``StoreError.code`` -> Danish).
STORE_ERRORS_DA: dict[str, str] = {
    "unknown_role": "Vælg en af rollerne netværksmedlem, UU-vejleder, dataansvarlig eller administrator.",
    "empty_username": "Brugernavnet mangler.",
    "bad_username": "Et brugernavn har højst 100 tegn, og kun tegn, der kan skrives.",
    "long_display_name": "Et visningsnavn har højst 200 tegn.",
    "user_exists": "Der findes allerede en bruger med det navn.",
    "wrong_assignment": ("Tildelingen passer ikke til rollen: en UU-vejleder får skoler, et netværksmedlem "
                         "netværk; dataansvarlige og administratorer ser ingen elever."),
    "short_password": "Adgangskoden skal have mindst 12 tegn.",
    "unknown_user": "Brugeren findes ikke.",
    "own_account": "Du kan ikke spærre din egen konto.",
    "unknown_action": "Handlingen findes ikke.",
    "invalid": "Ændringen kunne ikke gennemføres.",
}

#: Danish names of features, used when the feature catalogue gives none.
FEATURE_LABELS: dict[str, str] = {
    "absence_rate": "Fravær i alt (andel af skoledage)",
    "absence_rate_term": "Fravær i terminen (andel af skoledage)",
    "absence_rate_year": "Fravær i skoleåret (andel af skoledage)",
    "illness_rate": "Sygefravær (andel af skoledage)",
    "authorised_rate": "Lovligt fravær (andel af skoledage)",
    "unauthorised_rate": "Ulovligt fravær (andel af skoledage)",
    "late_arrivals": "Forsinkelser",
    "absence_trend": "Udvikling i fravær",
    "absence_reported": "Skolen indberetter fravær",
    "test_reading": "Nationale test, læsning",
    "test_math": "Nationale test, matematik",
    "contacts_ppr": "Kontakter med PPR",
    "notifications": "Underretninger",
    "support_active": "Specialpædagogisk støtte",
    "school_changes": "Skoleskift",
}

_WORDS: dict[str, str] = {
    "absence": "fravær", "illness": "sygdom", "authorised": "lovligt", "unauthorised": "ulovligt",
    "late": "for sent", "arrivals": "", "rate": "andel", "trend": "udvikling", "term": "termin",
    "year": "år", "test": "test", "reading": "læsning", "math": "matematik", "mark": "karakter",
    "marks": "karakterer", "contacts": "kontakter", "contact": "kontakt", "support": "støtte",
    "school": "skole", "changes": "skift", "count": "antal", "days": "dage", "mean": "gennemsnit",
    "last": "seneste", "prev": "forrige", "delta": "ændring", "slope": "hældning",
    "missing": "mangler", "notifications": "underretninger", "ppr": "PPR", "uu": "UU",
    "social": "social", "health": "sundhed", "speech": "tale", "special": "special",
    "grade": "klassetrin", "active": "aktiv", "any": "nogen", "n": "antal", "share": "andel",
    "weeks": "uger", "since": "siden", "z": "z-score", "score": "score", "percentile": "percentil",
}


def feature_label(name: str, catalogue: dict[str, str] | None = None) -> str:
    """A Danish label for a feature.

    Args:
        name: The feature's column name.
        catalogue: Labels from the feature catalogue, when it has them.

    Returns:
        The catalogue's label, a known label, or the name translated word by word.
    """
    if catalogue and name in catalogue:
        return catalogue[name]
    if name in FEATURE_LABELS:
        return FEATURE_LABELS[name]
    words = [_WORDS.get(word, word) for word in re.split(r"[_\s]+", name) if word]
    text = " ".join(word for word in words if word)
    return text[:1].upper() + text[1:] if text else name
