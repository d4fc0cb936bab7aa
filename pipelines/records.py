"""Records of processing (GDPR art. 30) and DPIA input, generated from the code's own truth.

``ews records`` writes them in Danish and English, as Markdown and PDF, from the municipality
config (sources and their column mappings, ignored columns, networks, review setting,
retention), the source contracts (``ews.schema.SOURCE_KINDS``: every column's legal category)
and the table catalogue of retention (``ews.retention.TABLE_RETENTION``). Nothing in them is
typed by hand that the code also knows, so they cannot drift from what the system does.
:func:`missing_entries` lists every source column without a legal category and every table
without a retention rule; ``ews records`` refuses to write while it finds any.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from ews.config import MunicipalityConfig
from ews.retention import KEPT_TABLES, TABLE_RETENTION
from ews.schema import CLEAN_TABLE, SOURCE_KINDS, Column

Language = str  # "da" or "en"

CATEGORY_LABELS = {
    "da": {"ordinary": "almindelig (art. 6)", "art9": "særlig kategori (art. 9)",
           "confidential": "fortrolig (dbl. § 8), behandles som art. 9", "cpr": "CPR-nummer (dbl. § 11)"},
    "en": {"ordinary": "ordinary (art. 6)", "art9": "special category (art. 9)",
           "confidential": "confidential (DPA § 8), treated as art. 9", "cpr": "CPR number (DPA § 11)"},
}
RETENTION_LABELS = {
    "da": {"source_rows_school_years": "{v} skoleår (kildernes rækker, efter filens skoleår)",
           "outputs_school_years": "{v} skoleår (beregninger og lister, efter terminens skoleår)",
           "identity_after_leaving_school_years": "{v} skoleår efter eleven sidst stod i elevregisteret",
           "keep_names_of_quarantined_rows": "navne på rækker i karantæne: {v}",
           "reviews_and_audit_years": "{v} år (vises af 'ews retention', arkiveres af kommunen)"},
    "en": {"source_rows_school_years": "{v} school years (source rows, by the file's school year)",
           "outputs_school_years": "{v} school years (outputs and lists, by the term's school year)",
           "identity_after_leaving_school_years": "{v} school years after the pupil was last in the register",
           "keep_names_of_quarantined_rows": "names of quarantined rows kept: {v}",
           "reviews_and_audit_years": "{v} years (shown by 'ews retention', archived by the municipality)"},
}


@dataclass
class Section:
    """One heading with paragraphs and at most one table."""

    heading: str
    paragraphs: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


def missing_entries(config: MunicipalityConfig, tables: list[str] | None = None) -> list[str]:
    """Source columns without a legal category and tables without a retention rule.

    Args:
        config: The municipality config (its sources).
        tables: Table names to check as well (e.g. every table of a warehouse); default: the
            clean tables of the sources.

    Returns:
        One line per problem; empty when the records are complete.
    """
    problems = []
    for source in config.sources:
        for column in SOURCE_KINDS[source.kind]:
            if column.category is None:
                problems.append(f"source '{source.name}' column '{column.name}': no legal category (ews/schema.py)")
        table = CLEAN_TABLE[source.kind]
        if table not in TABLE_RETENTION:
            problems.append(f"source '{source.name}' table '{table}': no retention rule (ews/retention.py)")
    for table in tables or []:
        if table not in TABLE_RETENTION and table not in KEPT_TABLES:
            problems.append(f"table '{table}': no retention rule (ews/retention.py TABLE_RETENTION or KEPT_TABLES)")
    return problems


def _retention_text(config: MunicipalityConfig, table: str, lang: Language) -> str:
    items = TABLE_RETENTION.get(table)
    if items is None:
        return KEPT_TABLES.get(table, "?")
    values = config.retention.model_dump()
    yes_no = {True: "ja" if lang == "da" else "yes", False: "nej" if lang == "da" else "no"}
    return "; ".join(RETENTION_LABELS[lang][item].format(v=yes_no.get(values[item], values[item])
                                                         if isinstance(values[item], bool) else values[item])
                     for item in items)


def _column_row(config: MunicipalityConfig, source: str, header: str, kind: str, column: Column,
                lang: Language) -> list[str]:
    """One line of the categories table: source, header, column, category, where stored, retention."""
    da = lang == "da"
    category = CATEGORY_LABELS[lang].get(column.category or "", "MANGLER" if da else "MISSING")
    if column.category_note:
        category += f" — {column.category_note}"
    if column.category == "cpr":
        stored = "pseudonymiseres ved døren, gemmes aldrig" if da else "pseudonymised at the door, never stored"
        return [source, header, column.name, category, stored, "-"]
    table = "identity_rows" if column.identity else CLEAN_TABLE[kind]
    stored = ("kun identitetslageret" if da else "identity store only") if column.identity else table
    return [source, header, column.name, category, stored, _retention_text(config, table, lang)]


def build_records(config: MunicipalityConfig, lang: Language) -> list[Section]:
    """The sections of the records of processing in one language.

    Args:
        config: The municipality config.
        lang: ``da`` or ``en``.

    Returns:
        The sections, in order.
    """
    da = lang == "da"
    sections = [Section(
        "Fortegnelse over behandlingsaktiviteter (art. 30)" if da else "Record of processing activities (art. 30)",
        [f"{'Dataansvarlig' if da else 'Controller'}: {config.municipality}. "
         + ("Genereret af 'ews records' fra konfigurationen, kildekontrakterne og tabelkataloget."
            if da else "Generated by 'ews records' from the config, the source contracts and the table catalogue.")])]
    sections.append(Section("Formål" if da else "Purpose", [
        ("At finde elever fra 5. klasse med risiko for at blive vurderet ikke-uddannelsesparate, så skolens "
         "tværfaglige netværk kan sætte tidligt og let ind. Et flag er et screeningssignal til faglig vurdering, "
         "aldrig en vurdering af eller en afgørelse om et barn; en UU-vejleder vurderer hvert flag, før nogen "
         "kontakter familien (art. 22)." if da else
         "To find, from grade 5, pupils at risk of being assessed not education-ready, so that the school's "
         "cross-disciplinary network can act early and lightly. A flag is a screening signal for professionals "
         "to weigh, never an assessment of or a decision about a child; a UU consultant reviews every flag "
         "before anyone contacts a family (art. 22).")]))
    sections.append(Section("Retsgrundlag" if da else "Legal basis", [
        "[UDFYLDES AF KOMMUNEN: art. 6, stk. 1, litra e, og art. 9, stk. 2, litra g/h, med den danske hjemmel "
        "(folkeskoleloven, lov om kommunal indsats for unge, databeskyttelsesloven) og kommunens vurdering]"
        if da else
        "[TO BE FILLED IN BY THE MUNICIPALITY: art. 6(1)(e) and art. 9(2)(g)/(h) with the Danish legal basis "
        "(the folkeskole act, the act on municipal youth efforts, the Data Protection Act) and its assessment]"]))
    rows = []
    for source in config.sources:
        for column in SOURCE_KINDS[source.kind]:
            rows.append(_column_row(config, source.name, source.columns.get(column.name, ""), source.kind, column,
                                    lang))
        for ignored in source.ignore_columns:
            rows.append([source.name, ignored, "-", "fritekst: læses aldrig" if da else "free text: never read",
                         "-", "-"])
    sections.append(Section(
        "Kategorier af oplysninger pr. kilde og kolonne" if da else "Categories of data per source and column",
        ["Alle kilder identificerer eleven ved CPR-nummer, som straks erstattes af et pseudonym (nøglebaseret "
         "hash); fødselsåret udledes af det." if da else
         "Every source identifies the pupil by CPR number, replaced at once by a pseudonym (keyed hash); the "
         "birth year is derived from it."],
        ["kilde" if da else "source", "eksportkolonne" if da else "export header", "kolonne" if da else "column",
         "retlig kategori" if da else "legal category", "opbevares i" if da else "stored in",
         "opbevaring" if da else "retention"], rows))
    recipients = [
        ["UU-vejleder" if da else "UU consultant",
         "flag på tildelte skoler før vurdering, med navn, klasse, begrundelser og risiko; elevsider; "
         "UU-arbejdslister fra kørslen" if da else
         "flags at assigned schools before review, with name, class, reasons and risk; pupil pages; the run's "
         "UU working lists"],
        ["Netværksmedlem" if da else "Network member",
         ("netværkets liste efter UU-vejlederens vurdering (bekræftede flag)" if config.flagging.require_review
          else "netværkets liste (alle flag, der ikke er afvist)") if da else
         ("the network's list after the UU consultant's review (confirmed flags)" if config.flagging.require_review
          else "the network's list (every flag not dismissed)")],
        ["Dataansvarlig (drift)" if da else "Data steward",
         "kun aggregater: kørsler, datakvalitet, stabilitet, modelkort; adgangsloggen" if da else
         "aggregates only: runs, data quality, stability, model card; the access log"],
        ["Administrator" if da else "Administrator",
         "brugere, udtagelser af screeningen, indsigtsudtræk (art. 15), adgangsloggen" if da else
         "accounts, exclusions from screening, subject-access exports (art. 15), the access log"],
    ]
    for network in config.networks:
        schools = ", ".join(s.code for s in config.schools if s.network == network.id)
        recipients.append([f"{'Netværk' if da else 'Network'} {network.id} ({network.name})",
                           (f"skoler {schools}; højst {network.capacity_per_term} elever pr. termin" if da else
                            f"schools {schools}; at most {network.capacity_per_term} pupils a term")])
    sections.append(Section("Modtagere pr. rolle" if da else "Recipients per role", [
        "Ingen oplysninger videregives uden for kommunen; intet sendes til netværk fra kørslen." if da else
        "Nothing is disclosed outside the municipality; no file goes to a network from the run."],
        ["rolle" if da else "role", "ser" if da else "sees"], recipients))
    table_rows = [[table, _retention_text(config, table, lang)] for table in sorted(TABLE_RETENTION)]
    table_rows += [[table, reason] for table, reason in sorted(KEPT_TABLES.items())]
    sections.append(Section("Opbevaring pr. tabel" if da else "Retention per table", [
        "Fra konfigurationens 'retention'; 'ews retention' viser, hvad der skal slettes. Kørslen sletter "
        "eksporternes rækker lige efter indlæsningen, før modellen ser dem, og resten til sidst." if da else
        "From the config's 'retention'; 'ews retention' shows what is due. Every run deletes the exports' rows "
        "right after reading them, before the model sees them, and the rest at its end."],
        ["tabel" if da else "table", "opbevaring" if da else "retention"], table_rows))
    ignored = sorted({c for s in config.sources for c in s.ignore_columns})
    sections.append(Section("Sikkerhedsforanstaltninger" if da else "Safeguards", [
        *(["Pseudonymisering ved døren: CPR-nummeret erstattes af en nøglebaseret hash, før noget gemmes.",
           "Navne og klasser ligger kun i et separat identitetslager, som kun autoriserede lister læser.",
           f"Fritekstkolonner læses aldrig ({', '.join(ignored) or 'ingen'}).",
           "Menneskelig vurdering før kontakt: " + ("hvert flag vurderes af en UU-vejleder."
                                                    if config.flagging.require_review else
                                                    "SLÅET FRA i konfigurationen (flagging.require_review)."),
           "Publiceringsport: modellen skal slå de simple regler og være kalibreret, ellers publiceres reglen.",
           "Rollebaseret adgang; hver visning af en elev og hver afvisning skrives i en adgangslog med "
           "nøglebaseret hashkæde.",
           "Udtagelse af screeningen, indsigt (art. 15), opbevaringsregler og atomiske kørsler."] if da else
          ["Pseudonymisation at the door: the CPR number is replaced by a keyed hash before anything is stored.",
           "Names and classes live only in a separate identity store, read only for authorised lists.",
           f"Free-text columns are never read ({', '.join(ignored) or 'none'}).",
           "Human review before contact: " + ("every flag is reviewed by a UU consultant."
                                              if config.flagging.require_review else
                                              "SWITCHED OFF in the config (flagging.require_review)."),
           "Publication gate: the model must beat the simple rules and be calibrated, else the rule is published.",
           "Role-based access; every view of a pupil and every refusal is written to an access log with a keyed "
           "hash chain.",
           "Exclusion from screening, subject access (art. 15), retention rules and atomic runs."])]))
    risks = ([["Diskrimination: modellen flager efter baggrund", "oprindelse bruges kun til fairness-revision, aldrig "
               "som input; fairness måles pr. gruppe i modelkortet"],
              ["Automatiske afgørelser (art. 22)", "flag er signaler; UU-vejlederen vurderer, før familien kontaktes"],
              ["Stigmatisering og forkerte flag", "begrundelser i ord, som kan efterprøves; afvisning med begrundelse"],
              ["Uautoriseret adgang", "roller og tildelinger, adgangslog med hashkæde, ingen filer til netværk fra "
               "kørslen"],
              ["Oplysninger opbevares for længe", "opbevaringsregler pr. tabel, slettes ved hver kørsel"],
              ["Forældre gør indsigelse", "udtagelse af screeningen fra næste kørsel; tilbagetrukket flag"],
              ["Fejl i data", "kontrol og karantæne ved døren; rettet udtræk erstatter filens rækker"]] if da else
             [["Discrimination: the model flags by background", "origin is used only to audit fairness, never as an "
               "input; fairness is measured per group in the model card"],
              ["Automated decisions (art. 22)", "flags are signals; a UU consultant reviews before any contact"],
              ["Stigma and wrong flags", "reasons in words that can be checked; dismissal with a reason"],
              ["Unauthorised access", "roles and assignments, an access log with a hash chain, no files to networks "
               "from the run"],
              ["Data kept too long", "retention per table, applied at every run"],
              ["Parents object", "exclusion from screening from the next run; the flag is withdrawn"],
              ["Wrong data", "checks and quarantine at the door; a corrected export replaces the file's rows"]])
    sections.append(Section("Input til konsekvensanalyse (DPIA)" if da else "DPIA input", [
        "Risici for de registrerede og de foranstaltninger i systemet, der imødegår dem." if da else
        "Risks to the data subjects and the measures in the system that address them."],
        ["risiko" if da else "risk", "foranstaltning" if da else "measure"], risks))
    return sections


def render_markdown(sections: list[Section]) -> str:
    """The sections as Markdown (the first as the title)."""
    lines: list[str] = []
    for index, section in enumerate(sections):
        lines += [("# " if index == 0 else "## ") + section.heading, ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        if section.columns:
            lines.append("| " + " | ".join(section.columns) + " |")
            lines.append("|" + "---|" * len(section.columns))
            lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in section.rows]
            lines.append("")
    return "\n".join(lines)


def render_pdf(sections: list[Section]) -> bytes:
    """The sections as a PDF (reportlab, standard fonts)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("records_small", fontSize=7, leading=8.5)
    story: list[object] = []
    for index, section in enumerate(sections):
        story.append(Paragraph(escape(section.heading), styles["Title" if index == 0 else "Heading2"]))
        story += [Paragraph(escape(p), styles["BodyText"]) for p in section.paragraphs]
        if section.columns:
            data = [[Paragraph(escape(c), small) for c in section.columns]]
            data += [[Paragraph(escape(cell), small) for cell in row] for row in section.rows]
            width = (landscape(A4)[0] - 30 * mm) / len(section.columns)
            table = LongTable(data, colWidths=[width] * len(section.columns), repeatRows=1)
            table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                                       ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                                       ("VALIGN", (0, 0), (-1, -1), "TOP")]))
            story.append(table)
        story.append(Spacer(1, 4 * mm))
    buffer = io.BytesIO()
    SimpleDocTemplate(buffer, pagesize=landscape(A4), leftMargin=15 * mm, rightMargin=15 * mm, topMargin=12 * mm,
                      bottomMargin=12 * mm, title=sections[0].heading, author="Alle skal med").build(story)
    return buffer.getvalue()


def write_records(config: MunicipalityConfig, out_dir: Path) -> list[Path]:
    """Write the records in Danish and English, Markdown and PDF.

    Args:
        config: The municipality config.
        out_dir: The folder (created).

    Returns:
        The four files: ``records-of-processing.{da,en}.{md,pdf}``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for lang in ("da", "en"):
        sections = build_records(config, lang)
        markdown = out_dir / f"records-of-processing.{lang}.md"
        markdown.write_text(render_markdown(sections), encoding="utf-8")
        pdf = out_dir / f"records-of-processing.{lang}.pdf"
        pdf.write_bytes(render_pdf(sections))
        paths += [markdown, pdf]
    return paths
