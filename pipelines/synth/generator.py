"""Generate a synthetic municipality: exports, ground truth and the municipality config.

The generator walks the school years in order. A cohort (the pupils whose grade 0 is in one
school year) is drawn in full the first time it is needed and dropped after its last school
year, so memory holds about eleven cohorts and one school year of daily absence at a time.
Every random draw comes from a generator seeded by ``(seed, stream, year[, chunk])``: the
same parameters give byte-identical files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import yaml

from ews.terms import Term, parse_school_year
from pipelines.synth import model
from pipelines.synth.calendar import build_school_year, school_year_label
from pipelines.synth.observations import FIRST_MARK_GRADE, write_year
from pipelines.synth.population import (
    ABSENCE_NONE,
    AREAS,
    Cohort,
    SchoolTable,
    build_cohort,
    build_schools,
)
from pipelines.synth.writers import CsvFile

MUNICIPALITY_NAME = "Syntetisk Kommune"
CAPACITY_SHARE = 0.06
EXPORT_PATTERNS = ("elever_*.csv", "fravaer_*.csv", "nationale_test_*.csv", "karakterer_*.xlsx",
                   "kontakter_*.csv", "specialstoette_*.csv", "upv_*.xlsx",
                   "maalrettet_indsats_*.csv")
PUPILS_HEADER = ["cpr", "grade8_school_year", "path", "causes", "p_upv", "p_exam"]
ASOF_HEADER = ["cpr", "term", "as_of_date", "grade", "p_upv"]
GENERATOR_FILE = "generator.yaml"


@dataclass(frozen=True)
class SynthParams:
    """Size, time span and generating model of the synthetic municipality.

    Attributes:
        seed: Seed of every random draw.
        schools: Number of schools.
        pupils_per_grade: Pupils per grade, municipality-wide.
        first_school_year: First school year written, e.g. ``'2014/15'``.
        last_term: Data are written up to the end of this term (H1: August-January, H2:
            February-June), e.g. ``'2025/26-H1'``.
        model: The generating model's parameters (effect sizes, base rate, late starters,
            noise); the defaults give the default world.
        marks_from_grade: First grade with standing marks in the exports (8 by law; lower
            for a municipality whose system exports earlier marks). Below 8, the config's
            marks source says so (``grades``).
    """

    seed: int = 7
    schools: int = 20
    pupils_per_grade: int = 1000
    first_school_year: str = "2014/15"
    last_term: str = "2025/26-H1"
    model: model.GeneratingModel = model.DEFAULT_MODEL
    marks_from_grade: int = FIRST_MARK_GRADE

    def to_document(self) -> dict:
        """The parameters as a plain mapping (``ground_truth/generator.yaml``)."""
        document = asdict(self)
        document["model"] = asdict(self.model)
        return document

    @classmethod
    def from_document(cls, document: dict) -> SynthParams:
        """Parameters from a mapping such as ``generator.yaml`` (missing keys: defaults).

        Args:
            document: Top-level keys are the fields of this class; ``model`` holds the
                fields of :class:`pipelines.synth.model.GeneratingModel`.

        Returns:
            The parameters.

        Raises:
            ValueError: When a key is unknown or a value is out of range, naming it.
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(document) - known)
        if unknown:
            raise ValueError(f"unknown synth parameter(s) {unknown}; known: {sorted(known)}")
        gen_document = dict(document.get("model") or {})
        gen_known = set(model.GeneratingModel.__dataclass_fields__)
        gen_unknown = sorted(set(gen_document) - gen_known)
        if gen_unknown:
            raise ValueError(f"unknown generating-model parameter(s) {gen_unknown}; known: "
                             f"{sorted(gen_known)}")
        values = {k: v for k, v in document.items() if k != "model"}
        return cls(**values, model=model.GeneratingModel(**gen_document))


@dataclass
class SynthSummary:
    """What :func:`generate_municipality` wrote.

    Attributes:
        out_dir: The output folder.
        config_path: ``municipality.yaml``.
        export_files: Export files written, by name.
        ground_truth_files: ``ground_truth/pupils.csv`` and ``ground_truth/asof.csv``.
        rows: Rows written per source (and ``ground_truth_pupils``, ``ground_truth_asof``).
        pupils: Distinct pupils in the exports.
        schools: Number of schools.
        school_years: School years written.
        seconds: Wall-clock time of the generation.
    """

    out_dir: Path
    config_path: Path
    export_files: list[Path] = field(default_factory=list)
    ground_truth_files: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    pupils: int = 0
    schools: int = 0
    school_years: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _validate(params: SynthParams) -> tuple[int, Term]:
    first = parse_school_year(params.first_school_year)
    last = Term.parse(params.last_term)
    if last.start_year < first:
        raise ValueError(f"last_term {params.last_term} is before first_school_year "
                         f"{params.first_school_year}")
    if first < 1960 or last.start_year > 2040:
        raise ValueError("school years must lie within 1960/61-2040/41 (CPR-like ids)")
    if not 1 <= params.schools <= 5000:
        raise ValueError("schools must be between 1 and 5000")
    if params.pupils_per_grade < 1:
        raise ValueError("pupils_per_grade must be at least 1")
    if not 1 <= params.marks_from_grade <= FIRST_MARK_GRADE:
        raise ValueError(f"marks_from_grade must be between 1 and {FIRST_MARK_GRADE}")
    return first, last


def _clear(out_dir: Path) -> tuple[Path, Path]:
    exports = out_dir / "exports"
    truth = out_dir / "ground_truth"
    exports.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)
    for pattern in EXPORT_PATTERNS:
        for path in exports.glob(pattern):
            path.unlink()
    for name in ("pupils.csv", "asof.csv", GENERATOR_FILE):
        (truth / name).unlink(missing_ok=True)
    return exports, truth


def _ground_truth_rows(cohort: Cohort, ref: model.Reference) -> dict[str, np.ndarray]:
    idx = np.flatnonzero(cohort.appeared)
    latent = cohort.latent.subset(idx)
    return {
        "cpr": cohort.cpr[idx],
        "grade8_school_year": np.full(idx.size, school_year_label(cohort.start_year + 8),
                                      dtype=object),
        "path": model.pupil_paths(latent),
        "causes": model.pupil_causes(latent, ref),
        "p_upv": _probabilities(cohort.p_upv[idx]),
        "p_exam": _probabilities(cohort.p_exam[idx]),
    }


def _probabilities(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    return np.char.mod("%.6f", clipped).astype(object)


def generate_municipality(
    out_dir: Path,
    params: SynthParams,
    progress: Callable[[str, float], None] | None = None,
) -> SynthSummary:
    """Write a synthetic municipality: exports, ground truth and ``municipality.yaml``.

    Args:
        out_dir: Output folder (created; earlier synthetic files in it are replaced).
        params: Size, span and seed.
        progress: Called with a message and the fraction done (0-1).

    Returns:
        Paths and row counts written.

    Raises:
        ValueError: When the parameters are out of range.
    """
    started = time.perf_counter()
    first, last = _validate(params)
    out_dir = Path(out_dir)
    exports, truth = _clear(out_dir)
    report = progress or (lambda message, fraction: None)
    ref = model.reference(params.model)
    schools = build_schools(params.schools, params.pupils_per_grade,
                            np.random.default_rng([params.seed, 0]))
    years = list(range(first, last.start_year + 1))
    summary = SynthSummary(out_dir=out_dir, config_path=out_dir / "municipality.yaml",
                           schools=schools.count)
    pupils_file = CsvFile(truth / "pupils.csv", PUPILS_HEADER, ";", "utf-8")
    asof_file = CsvFile(truth / "asof.csv", ASOF_HEADER, ";", "utf-8")
    cohorts: dict[int, Cohort] = {}
    grade59 = np.zeros(schools.count, dtype=np.int64)

    def retire(start_year: int) -> None:
        cohort = cohorts.pop(start_year)
        rows = _ground_truth_rows(cohort, ref)
        summary.pupils += len(rows["cpr"])
        pupils_file.write(rows)

    for i, y in enumerate(years):
        report(f"Skoleår {school_year_label(y)}", i / len(years))
        for c in range(y - 10, y + 1):
            if c not in cohorts:
                cohorts[c] = build_cohort(c, params.pupils_per_grade, schools, params.seed, ref)
        year = build_school_year(y)
        if y == last.start_year:
            cut_date = date(y + 1, 1, 31) if last.half == 1 else date(y + 1, 6, 30)
            last_half = last.half
        else:
            cut_date, last_half = date(y + 1, 7, 31), 2
        cut = (cut_date - date(1970, 1, 1)).days
        active = [cohorts[c] for c in sorted(cohorts)]
        result = write_year(exports, active, year, cut, last_half, schools, ref, params.seed,
                            params.marks_from_grade)
        for source, path in result.files.items():
            summary.export_files.append(path)
            summary.rows[source] = summary.rows.get(source, 0) + result.rows[source]
        if result.asof:
            asof_file.write({
                "cpr": result.asof["cpr"],
                "term": result.asof["term"],
                "as_of_date": np.datetime_as_string(
                    result.asof["date"].astype("datetime64[D]"), unit="D").astype(object),
                "grade": result.asof["grade"].astype(str).astype(object),
                "p_upv": _probabilities(result.asof["p"]),
            })
        if result.grade59_by_school is not None:
            grade59 = result.grade59_by_school
        summary.school_years.append(school_year_label(y))
        for c in [c for c in sorted(cohorts) if c + 10 <= y]:
            retire(c)
    for c in sorted(cohorts):
        retire(c)

    summary.rows["ground_truth_pupils"] = pupils_file.rows
    summary.rows["ground_truth_asof"] = asof_file.rows
    generator_path = truth / GENERATOR_FILE
    generator_path.write_text(yaml.safe_dump(params.to_document(), sort_keys=False),
                              encoding="utf-8")
    summary.ground_truth_files = [pupils_file.path, asof_file.path, generator_path]
    report("Kommunens konfiguration", 0.99)
    write_config(summary.config_path, schools, grade59, params.marks_from_grade)
    summary.export_files.sort()
    summary.seconds = time.perf_counter() - started
    report("Færdig", 1.0)
    return summary


def municipality_config(schools: SchoolTable, grade59_by_school: np.ndarray,
                        marks_from_grade: int = FIRST_MARK_GRADE) -> dict:
    """The config document of the synthetic municipality (via ``ews.config``).

    Args:
        schools: The schools.
        grade59_by_school: Pupils in grades 5-9 per school (sets network capacities).
        marks_from_grade: First grade with standing marks; below 8 the marks source declares
            its grades (``grades: [first, 10]``), as a municipality exporting them would.

    Returns:
        The validated config document.
    """
    from ews.config import build_config_document

    networks = []
    for network_id in sorted(set(schools.network)):
        members = np.flatnonzero(schools.network == network_id)
        member_names = [str(schools.names[i]) for i in members]
        pupils = int(grade59_by_school[members].sum())
        networks.append({
            "id": str(network_id),
            "name": "Netværk " + " og ".join(member_names),
            "area": str(schools.areas[members[0]]),
            "capacity_per_term": max(1, int(round(CAPACITY_SHARE * pupils))),
        })
    school_list = [
        {
            "code": str(schools.codes[i]),
            "name": str(schools.names[i]),
            "area": str(schools.areas[i]),
            "network": str(schools.network[i]),
            "reports_absence": bool(schools.absence_mode[i] != ABSENCE_NONE),
        }
        for i in range(schools.count)
    ]
    document = build_config_document(MUNICIPALITY_NAME, list(AREAS), networks, school_list)
    if marks_from_grade < FIRST_MARK_GRADE:
        from ews.config import MunicipalityConfig

        for source in document["sources"]:
            if source["kind"] == "marks":
                source["grades"] = [marks_from_grade, 10]
        MunicipalityConfig.model_validate(document)
    return document


def write_config(path: Path, schools: SchoolTable, grade59_by_school: np.ndarray,
                 marks_from_grade: int = FIRST_MARK_GRADE) -> None:
    """Write ``municipality.yaml`` for the synthetic municipality."""
    document = municipality_config(schools, grade59_by_school, marks_from_grade)
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
