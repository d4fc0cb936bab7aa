"""The municipality config: one versioned YAML file, validated in full before any task runs."""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ews.schema import SOURCE_KINDS
from ews.terms import Term, month_day, parse_school_year

CONFIG_VERSION = 1

OutcomeDefinition = Literal[
    "upv_ikke_uddannelsesparat", "afgangsproeve_krav_ikke_opfyldt", "maalrettet_indsats"
]


class ConfigError(Exception):
    """The config file cannot be used; the message says where and what to change."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Network(_Strict):
    """A cross-disciplinary network around one school district."""

    id: str
    name: str
    area: str
    capacity_per_term: int = Field(gt=0, description="Pupils the network can take up a term")


class School(_Strict):
    """A school as coded in the exports (``Skolekode``)."""

    code: str
    name: str
    area: str
    network: str
    reports_absence: bool = True


class TermWindow(_Strict):
    """Start, end and as-of day of a term, as ``MM-DD``."""

    start: str
    end: str
    as_of: str

    @field_validator("start", "end", "as_of")
    @classmethod
    def _month_day(cls, value: str) -> str:
        try:
            month_day(value, 2001)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"'{value}' is not a month-day like 11-15") from exc
        return value


class TermCalendar(_Strict):
    """The school calendar: H1 is the autumn term, H2 the spring term."""

    first_school_year: str = "2014/15"
    h1: TermWindow = TermWindow(start="08-01", end="01-31", as_of="11-15")
    h2: TermWindow = TermWindow(start="02-01", end="06-30", as_of="04-15")

    @field_validator("first_school_year")
    @classmethod
    def _school_year(cls, value: str) -> str:
        parse_school_year(value)
        return value

    def as_of_date(self, term: Term):  # noqa: ANN201 - date
        """The as-of date of a term: data dated before it may be used for that term."""
        window = self.h1 if term.half == 1 else self.h2
        year = term.start_year if term.half == 1 else term.start_year + 1
        return month_day(window.as_of, year)


class SourceConfig(_Strict):
    """How to read one municipal export and map it to a canonical source kind."""

    name: str
    kind: Literal["pupils", "absence", "tests", "marks", "contacts", "support", "upv", "designation"]
    pattern: str
    format: Literal["csv", "xlsx"]
    encoding: str = "utf-8"
    delimiter: str = ";"
    decimal: Literal[",", "."] = ","
    sheet: str | None = None
    date_formats: list[str] = ["%d-%m-%Y", "%d.%m.%Y"]
    columns: dict[str, str]
    values: dict[str, dict[str, str]] = {}
    ignore_columns: list[str] = []
    required: bool = True
    severity: dict[str, Literal["row", "file"]] = {}
    volume_change_max: float = Field(0.5, gt=0)
    grades: list[int] | None = Field(
        None, description="[first, last] grade the source's rows may carry (default 0-10): e.g. "
                          "[6, 10] for a marks export that includes marks from grade 6")
    quarantine_share_max: float | None = Field(
        None, ge=0, le=1, description="Largest share of one file's rows that may be quarantined "
                                      "before the run stops (default: the config's "
                                      "quarantine_share_max)")
    accept_quarantine: list[str] = Field(
        [], description="Files whose quarantine share the steward has accepted: 'file name' (any "
                        "content) or 'file name@content mark' (that content only; the run's "
                        "message names the mark)")
    optional_school_years: list[str] = Field(
        [], description="School years (e.g. '2024/25') for which the source's file may be "
                        "missing: the run goes on with a warning in the manifest")
    last_school_year: str | None = Field(
        None, description="The last school year the source exists (e.g. '2023/24' for the UPV, "
                          "abolished after it): later years are not expected")
    first_term: Literal["H1", "H2"] | None = Field(
        None, description="The first term of a school year whose run expects the source's file "
                          "for that year: 'H2' for the national tests, held in the spring "
                          "(default: H1, except for kind 'tests')")

    @field_validator("optional_school_years")
    @classmethod
    def _optional_years(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_school_year(text)
        return value

    @field_validator("last_school_year")
    @classmethod
    def _last_year(cls, value: str | None) -> str | None:
        if value is not None:
            parse_school_year(value)
        return value

    @model_validator(mode="after")
    def _columns_cover_kind(self) -> SourceConfig:
        canonical = {column.name for column in SOURCE_KINDS[self.kind]}
        missing = sorted(canonical - set(self.columns))
        unknown = sorted(set(self.columns) - canonical)
        if missing:
            raise ValueError(f"columns: no mapping for {missing} (needed by kind '{self.kind}')")
        if unknown:
            raise ValueError(f"columns: {unknown} are not columns of kind '{self.kind}'")
        bad_values = sorted(set(self.values) - canonical)
        if bad_values:
            raise ValueError(f"values: {bad_values} are not columns of kind '{self.kind}'")
        if self.format == "xlsx" and not self.sheet:
            raise ValueError("sheet: an Excel source needs the sheet name")
        if self.grades is not None:
            if "grade" not in canonical:
                raise ValueError(f"grades: kind '{self.kind}' has no grade column")
            if len(self.grades) != 2 or not 0 <= self.grades[0] <= self.grades[1] <= 10:
                raise ValueError(f"grades: expected [first, last] within 0-10, got {self.grades}")
        return self

    @property
    def grade_range(self) -> tuple[int, int]:
        """The grades this source's rows may carry: the config's ``grades``, else 0-10."""
        return (self.grades[0], self.grades[1]) if self.grades is not None else (0, 10)


class Tier(_Strict):
    """A risk tier, mapped to a step of the municipality's indsatstrappe."""

    name: str
    min_risk: float = Field(ge=0, le=1)
    step: str


class Publication(_Strict):
    """What a run publishes when the model does not pass the publication gate (``models.gate``).

    ``rule_list`` (default): each network gets the list of the best rule baseline on the
    held-out cohorts, labelled as a rule list in every file and page; ``no_list``: no flag
    list is written. Either way the run succeeds, its manifest carries the gate's figures and
    a warning, and ``ews run`` exits with code 6.
    """

    on_gate_failure: Literal["rule_list", "no_list"] = "rule_list"


class Flagging(_Strict):
    """How each network's flag list is chosen."""

    mode: Literal["capacity", "threshold", "capacity_and_threshold"] = "capacity"
    threshold: float = Field(0.5, ge=0, le=1)
    require_review: bool = True
    grades: list[int] = [5, 6, 7, 8, 9]


class FollowUp(_Strict):
    """The follow-up duty (*opfølgningspligt*) on flags (issue 14).

    A flag not reviewed by a UU consultant within ``review_within_days`` days of its term's
    as-of date is overdue on the consultant's and the network's pages; so is a confirmed flag
    whose next step has passed or that has no responsible person and next step.
    """

    review_within_days: int = Field(21, ge=1, le=365, description="Days after the as-of date to review a flag")


#: The candidates of model selection (``models.risk_model.DEFAULT_CANDIDATES``, same order) and
#: the parameters each kind takes; ``model.candidate`` pins one of them.
MODEL_CANDIDATES = ("logistic_c0.1", "logistic_c1", "boosting_4_leaves_1pct", "boosting_8_leaves_0.3pct")
CANDIDATE_PARAMETERS = {"logistic": ("C",), "boosting": ("max_leaf_nodes", "min_samples_leaf_share")}


class ModelSettings(_Strict):
    """Training choices that change the model (and so its id).

    ``candidate`` is ``auto`` (model selection on the training cohorts' history chooses) or the
    name of one candidate, which is then used whatever the validation says;
    ``candidate_params`` overrides the pinned candidate's parameters (``C`` for a logistic
    candidate; ``max_leaf_nodes`` and ``min_samples_leaf_share`` for a boosted one).
    """

    seed: int = 20160101
    training_grades: list[int] = [5, 6, 7, 8]
    evaluation_cohorts: int = Field(2, ge=1, description="Latest outcome cohorts held out")
    candidate: Literal["auto", "logistic_c0.1", "logistic_c1", "boosting_4_leaves_1pct",
                       "boosting_8_leaves_0.3pct"] = "auto"
    candidate_params: dict[str, float] = {}
    selection_origins: int = Field(3, ge=1, le=6, description="Training cohorts validated on, latest first")

    @model_validator(mode="after")
    def _pinned_parameters(self) -> ModelSettings:
        if not self.candidate_params:
            return self
        if self.candidate == "auto":
            raise ValueError("candidate_params: set model.candidate to the candidate whose parameters they are")
        kind = self.candidate.split("_")[0]
        allowed = CANDIDATE_PARAMETERS[kind]
        unknown = sorted(set(self.candidate_params) - set(allowed))
        if unknown:
            raise ValueError(f"candidate_params: {unknown} are not parameters of a {kind} candidate "
                             f"(allowed: {list(allowed)})")
        params = self.candidate_params
        if "C" in params and not params["C"] > 0:
            raise ValueError("candidate_params: C must be above 0")
        if "max_leaf_nodes" in params and (params["max_leaf_nodes"] < 2 or params["max_leaf_nodes"] != int(
                params["max_leaf_nodes"])):
            raise ValueError("candidate_params: max_leaf_nodes must be a whole number of at least 2")
        if "min_samples_leaf_share" in params and not 0 < params["min_samples_leaf_share"] < 0.5:
            raise ValueError("candidate_params: min_samples_leaf_share must be between 0 and 0.5")
        return self


class Retention(_Strict):
    """How long each data item is kept, in school years before the current one (``ews.retention``).

    The defaults are a starting point a municipality's data protection officer confirms; why
    each is what it is is written in ``docs/data-life-cycle.md``. ``ews retention`` shows what
    would go; ``--apply`` (and the end of every termly run) deletes it.
    """

    source_rows_school_years: int = Field(
        10, ge=5, description="Pseudonymised rows of the exports (raw and clean tables, the export files in "
                              "the inbox), by the file's school year: the model learns from cohorts followed from "
                              "grade 5 to their grade-8/9 outcome (five school years) and from several such "
                              "cohorts, so less than five would leave it nothing to learn from")
    outputs_school_years: int = Field(
        3, ge=0, description="Features, scores, explanations, flags, withdrawn flags, quarantine and validation "
                             "results, and each run's folder (the UU working lists), by the term's school year: "
                             "long enough to follow a flag from grade 5 or 6 to the grade-8 assessment and to "
                             "compare flags with outcomes")
    identity_after_leaving_school_years: int = Field(
        1, ge=0, description="Names and classes (identity store) of pupils with no row in the pupils register for "
                             "this many school years (left the municipality's schools or finished school)")
    keep_names_of_quarantined_rows: bool = Field(
        False, description="Keep the names of register rows that did not pass the checks (they are never shown; "
                           "a corrected export brings them back)")
    reviews_and_audit_years: int = Field(
        5, ge=1, description="Reviews and the app's audit log: shown by 'ews retention' but not deleted by it "
                             "(their keyed hash chains would break; docs/data-life-cycle.md)")


class MunicipalityConfig(_Strict):
    """Everything municipality-specific, validated as a whole."""

    config_version: Literal[1]
    municipality: str
    areas: list[str]
    networks: list[Network]
    schools: list[School]
    terms: TermCalendar = TermCalendar()
    sources: list[SourceConfig]
    outcome: OutcomeDefinition = "upv_ikke_uddannelsesparat"
    tiers: list[Tier] = [
        Tier(name="lav", min_risk=0.0, step="Almen praksis i klassen"),
        Tier(name="forhøjet", min_risk=0.3, step="Drøftelse i netværket"),
        Tier(name="høj", min_risk=0.55, step="Forebyggende indsats med kontaktperson"),
        Tier(name="meget høj", min_risk=0.75, step="Tværfaglig indsats med plan og opfølgning"),
    ]
    publication: Publication = Publication()
    flagging: Flagging = Flagging()
    followup: FollowUp = FollowUp()
    model: ModelSettings = ModelSettings()
    quarantine_share_max: float = Field(
        0.05, ge=0, le=1, description="Largest share of one file's rows that may be quarantined "
                                      "before the run stops (a source's own value wins)")
    retention: Retention = Retention()

    def quarantine_share_of(self, source: SourceConfig) -> float:
        """The largest share of a file's rows the source may quarantine before the run stops."""
        if source.quarantine_share_max is not None:
            return source.quarantine_share_max
        return self.quarantine_share_max

    @model_validator(mode="after")
    def _consistent(self) -> MunicipalityConfig:
        problems: list[str] = []
        _unique(problems, "networks", [n.id for n in self.networks])
        _unique(problems, "schools", [s.code for s in self.schools])
        _unique(problems, "sources", [s.name for s in self.sources])
        stems: dict[str, str] = {}
        for network in self.networks:  # each network's files are named after its id
            other = stems.setdefault(safe_file_stem(network.id), network.id)
            if other != network.id:
                problems.append(f"networks {other!r} and {network.id!r} would share the file name "
                                f"{safe_file_stem(network.id)}: give one of them another id")
        network_ids = {n.id for n in self.networks}
        for network in self.networks:
            if network.area not in self.areas:
                problems.append(f"networks[{network.id}].area '{network.area}' is not in areas")
        for school in self.schools:
            if school.network not in network_ids:
                problems.append(f"schools[{school.code}].network '{school.network}' is not a network id")
            if school.area not in self.areas:
                problems.append(f"schools[{school.code}].area '{school.area}' is not in areas")
        kinds = {s.kind for s in self.sources}
        for kind in ("pupils", "absence"):
            if kind not in kinds:
                problems.append(f"sources: no source of kind '{kind}'")
        thresholds = [t.min_risk for t in self.tiers]
        if thresholds != sorted(thresholds) or not thresholds or thresholds[0] != 0:
            problems.append("tiers: min_risk must start at 0 and increase")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def school(self, code: str) -> School:
        """The school with this code."""
        return next(s for s in self.schools if s.code == code)

    def network_of_school(self) -> dict[str, str]:
        """School code -> network id."""
        return {s.code: s.network for s in self.schools}

    def tier_for(self, risk: float) -> Tier:
        """The highest tier whose threshold the risk reaches."""
        return [t for t in self.tiers if risk >= t.min_risk][-1]


def safe_file_stem(network_id: str) -> str:
    """A network id usable as a file name (letters, digits, ``-`` and ``_`` kept)."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", network_id).strip("_")
    return stem or "netvaerk"


def _unique(problems: list[str], what: str, keys: list[str]) -> None:
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        problems.append(f"{what}: duplicated ids {duplicates}")


def read_yaml_mapping(path: Path, missing: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (a municipality's or a fleet's config).

    Args:
        path: The file.
        missing: What to say after the path when the file does not exist.

    Raises:
        ConfigError: When it is missing, not YAML, or not a mapping at the top level.
    """
    if not path.exists():
        raise ConfigError(f"{path}: {missing}")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return document


def load_config(path: Path) -> MunicipalityConfig:
    """Read and validate the municipality config.

    Args:
        path: The YAML file.

    Returns:
        The validated config.

    Raises:
        ConfigError: With every problem found, each naming its place in the file.
    """
    document = read_yaml_mapping(path, "config file not found. Run 'ews synth' for the synthetic municipality "
                                       "or set EWS_CONFIG_PATH to your municipality's config.")
    version = document.get("config_version")
    if version != CONFIG_VERSION:
        raise ConfigError(
            f"{path}: config_version is {version!r}; this code reads version {CONFIG_VERSION}"
        )
    try:
        return MunicipalityConfig.model_validate(document)
    except ValidationError as exc:
        lines = [f"{path}: {exc.error_count()} problem(s) in the config:"]
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "(top level)"
            lines.append(f"  - {where}: {error['msg']}")
        raise ConfigError("\n".join(lines)) from exc


def config_hash(config: MunicipalityConfig) -> str:
    """A stable hash of the config's content (not its formatting)."""
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def default_sources() -> list[dict[str, Any]]:
    """The source mappings for exports in the form of ``docs/sources.md``."""
    text = resources.files("ews").joinpath("default_sources.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def build_config_document(
    municipality_name: str,
    areas: list[str],
    networks: list[dict[str, Any]],
    schools: list[dict[str, Any]],
) -> dict[str, Any]:
    """A complete config document (validated) for a municipality with the default exports.

    Args:
        municipality_name: Name shown on lists and pages.
        areas: Area names.
        networks: Network dicts (``id``, ``name``, ``area``, ``capacity_per_term``).
        schools: School dicts (``code``, ``name``, ``area``, ``network``, ``reports_absence``).

    Returns:
        A plain dict ready for ``yaml.safe_dump``.
    """
    defaults = MunicipalityConfig.model_fields
    document: dict[str, Any] = {
        "config_version": CONFIG_VERSION,
        "municipality": municipality_name,
        "areas": list(areas),
        "networks": networks,
        "schools": schools,
        "terms": TermCalendar().model_dump(mode="json"),
        "outcome": defaults["outcome"].default,
        "tiers": [t.model_dump(mode="json") for t in defaults["tiers"].default],
        "flagging": Flagging().model_dump(mode="json"),
        "followup": FollowUp().model_dump(mode="json"),
        "model": ModelSettings().model_dump(mode="json"),
        "sources": default_sources(),
    }
    MunicipalityConfig.model_validate(document)
    return document
