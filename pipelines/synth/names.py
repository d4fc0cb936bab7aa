"""Built-in word lists of the synthetic municipality: names, school names, remark phrases.

Every name in the exports comes from these lists and nowhere else. Remarks (the free-text
``Bemærkning`` column of the contacts file) are generic phrases that identify no one.
"""

from __future__ import annotations

GIRL_NAMES: tuple[str, ...] = (
    "Emma", "Ida", "Clara", "Freja", "Alma", "Sofie", "Anna", "Laura", "Ella", "Karla",
    "Josefine", "Agnes", "Mathilde", "Maja", "Nanna", "Signe", "Astrid", "Liva", "Olivia",
    "Frida", "Ellen", "Lærke", "Asta", "Esther", "Luna", "Marie", "Victoria", "Cecilie",
)
BOY_NAMES: tuple[str, ...] = (
    "William", "Noah", "Oscar", "Lucas", "Victor", "Malthe", "Emil", "Frederik", "Carl",
    "Alfred", "Magnus", "Mikkel", "Mads", "Rasmus", "Jonas", "Oliver", "Elias", "Aksel",
    "Valdemar", "Storm", "Bertram", "Anton", "August", "Johan", "Søren", "Villads", "Theo",
)
#: First names used somewhat more often for pupils of non-Danish origin (also in the lists
#: above for anyone): the lists are small on purpose.
GIRL_NAMES_OTHER: tuple[str, ...] = ("Fatima", "Amina", "Sara", "Noor", "Layla", "Zainab", "Maryam")
BOY_NAMES_OTHER: tuple[str, ...] = ("Ali", "Omar", "Yusuf", "Ahmad", "Ibrahim", "Adam", "Hamza")
LAST_NAMES: tuple[str, ...] = (
    "Nielsen", "Jensen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
    "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen",
    "Christiansen", "Poulsen", "Johansen", "Møller", "Mortensen", "Knudsen", "Jakobsen",
    "Mikkelsen", "Frederiksen", "Laursen", "Henriksen", "Lund", "Schmidt", "Eriksen", "Holm",
)
LAST_NAMES_OTHER: tuple[str, ...] = ("Hussein", "Ahmed", "Ali", "Khan", "Yilmaz", "Hassan", "Mohamad")

ALL_FIRST_NAMES: frozenset[str] = frozenset(
    GIRL_NAMES + BOY_NAMES + GIRL_NAMES_OTHER + BOY_NAMES_OTHER
)
ALL_LAST_NAMES: frozenset[str] = frozenset(LAST_NAMES + LAST_NAMES_OTHER)

SCHOOL_NAME_STEMS: tuple[str, ...] = (
    "Humle", "Hjorte", "Krone", "Mejse", "Linde", "Bøge", "Ege", "Aske", "Birke", "Elme",
    "Hassel", "Bakke", "Eng", "Skov", "Sø", "Å", "Mose", "Hede", "Kirke", "Mølle", "Strand",
    "Fjord", "Dal", "Holm", "Toft", "Vang", "Kilde", "Bro", "Lunde", "Rønne", "Hvid", "Grøn",
    "Sol", "Ly", "Kær", "Bavne", "Ås", "Højager", "Granly", "Tjørne", "Rosen", "Kløver",
    "Mark", "Agerbæk", "Stjerne", "Valmue", "Hyben", "Fure", "Lyng", "Klint", "Vinkel",
    "Ravn", "Ørne", "Svane", "Bjerre", "Borg", "Vig", "Næs", "Tved", "Lyst", "Pile",
    "Poppel", "Kastanje", "Gran", "Fyrre", "Hvede", "Rug", "Havre", "Tårn", "Lærke",
)
SCHOOL_NAME_MIDDLES: tuple[str, ...] = (
    "", "vang", "bjerg", "holm", "toft", "eng", "park", "dal", "lund", "høj", "gård",
    "mark", "bro", "sø", "ager", "bæk", "hus", "lyng",
)

CONTACT_REMARKS: tuple[str, ...] = (
    "Samtale afholdt", "Opfølgning aftalt", "Møde med forældre", "Observation i klassen",
    "Drøftet på netværksmøde", "Status givet til skolen", "Telefonisk kontakt",
    "Ny aftale om opfølgning", "Forældre deltog", "Samtale med eleven", "Sparring med lærer",
)
NOTIFICATION_REMARKS: tuple[str, ...] = (
    "Underretning modtaget", "Underretning behandlet", "Sendt til vurdering",
)


def school_names(count: int) -> list[str]:
    """Distinct Danish-sounding school names, in a fixed order.

    Args:
        count: How many names.

    Returns:
        ``count`` distinct names such as ``'Lindeskolen'`` or ``'Bøgevangskolen'`` (no
        compass names, which would contradict the areas).

    Raises:
        ValueError: When more names are asked for than the lists can make.
    """
    names: list[str] = []
    for middle in SCHOOL_NAME_MIDDLES:
        for stem in SCHOOL_NAME_STEMS:
            if middle and stem.lower().endswith(middle):
                continue
            names.append(f"{stem}{middle}skolen")
            if len(names) == count:
                return names
    raise ValueError(f"cannot make {count} distinct school names (at most {len(names)})")
