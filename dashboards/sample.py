"""A synthetic state folder for the review app: warehouse, identity store, run log, config.

It writes the tables the app reads (``scores_pupil_term``, ``flags_pupil_term``,
``explanations_pupil_term``, ``features_pupil_term``, ``models``, ``validation_results``,
``quarantine_rows``, ``identity_pupils``) with made-up pseudonyms and names, through
:func:`ews.warehouse.staged_write`, so that tests, benchmarks and a first look at the app need
no pipeline run. Nothing here is a real person; the numbers mean nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import yaml

from dashboards.queries import load_queries
from ews.config import MunicipalityConfig, build_config_document
from ews.tables import FEATURES_TABLE, create_tables
from ews.terms import Term
from ews.warehouse import record_run_end, record_run_start, staged_write

REASONS_DA = [
    "Højt fravær det seneste halve år",
    "Stigende fravær over de seneste terminer",
    "Svage resultater i de nationale test i dansk/læsning",
    "Mange kontakter med PPR det seneste år",
    "Flere skoleskift",
    "Bekymrende fravær det seneste år (over 10 %)",
]
FIRST_NAMES = ["Freja", "Noah", "Ida", "William", "Emma", "Oscar", "Alma", "Karl", "Clara", "Lucas",
               "Agnes", "Valdemar", "Ella", "Alfred", "Sofia", "Emil"]
LAST_NAMES = ["Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
              "Rasmussen", "Jørgensen"]
MODEL_ID = "sample-model-1"
#: The tables the sample fills (besides ``features_pupil_term``), emptied first.
SAMPLE_TABLES = ("scores_pupil_term", "flags_pupil_term", "explanations_pupil_term", "models")
BASE_VALUE = -1.6


@dataclass
class SampleState:
    """What :func:`write_sample_state` wrote."""

    state_dir: Path
    config_path: Path
    terms: list[str]
    run_ids: dict[str, str]
    networks: list[str]
    schools: list[str]
    school_network: dict[str, str]
    pupils: int
    as_of_dates: dict[str, date] = field(default_factory=dict)


def sample_run_id(term: str) -> str:
    """The run id the sample uses for a term."""
    return "sample-" + term.replace("/", "-")


def write_sample_state(
    state_dir: Path,
    *,
    schools: int = 6,
    schools_per_network: int = 2,
    pupils_per_school: int = 40,
    terms: tuple[str, ...] = ("2024/25-H2", "2025/26-H1"),
    capacity_share: float = 0.15,
    explain_all_pupils: bool = True,
) -> SampleState:
    """Write a synthetic state folder (or replace the sample's tables in one).

    Args:
        state_dir: The state folder.
        schools: Number of schools (``S0001``...).
        schools_per_network: Schools per network (``N001``...).
        pupils_per_school: Pupils per school, spread over grades 5 to 9.
        terms: Terms with a run, oldest first.
        capacity_share: Share of a network's pupils on its list each term.
        explain_all_pupils: Explanations for every scored pupil (else only flagged ones)
            in the last term; earlier terms explain flagged pupils only.

    Returns:
        What was written.
    """
    sql = load_queries("sample.sql")
    state_dir.mkdir(parents=True, exist_ok=True)
    n_networks = math.ceil(schools / schools_per_network)
    school_codes = [f"S{i + 1:04d}" for i in range(schools)]
    network_ids = [f"N{i + 1:03d}" for i in range(n_networks)]
    school_network = {code: f"N{i // schools_per_network + 1:03d}" for i, code in enumerate(school_codes)}
    config_path = state_dir / "municipality.yaml"
    document = build_config_document(
        "Prøvekommune", ["Nord", "Syd"],
        [{"id": n, "name": f"Netværk {n[1:].lstrip('0')}", "area": "Nord" if i % 2 == 0 else "Syd",
          "capacity_per_term": 10} for i, n in enumerate(network_ids)],
        [{"code": c, "name": f"Skole {c[1:].lstrip('0')}", "area": "Nord" if int(school_network[c][1:]) % 2 else "Syd",
          "network": school_network[c], "reports_absence": True} for c in school_codes],
    )
    config_path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    config = MunicipalityConfig.model_validate(document)
    parsed = [Term.parse(t) for t in terms]
    as_of = {str(t): config.terms.as_of_date(t) for t in parsed}
    training_term = str(parsed[0].previous().previous())
    training_as_of = config.terms.as_of_date(Term.parse(training_term))
    features, units = _feature_list()
    pupils = schools * pupils_per_school
    per_network = pupils_per_school * schools_per_network
    capacity = max(1, round(per_network * capacity_share))
    run_ids = {str(t): sample_run_id(str(t)) for t in parsed}
    card_path = state_dir / "models" / MODEL_ID / "model_card.md"
    card_path.parent.mkdir(parents=True, exist_ok=True)
    card_path.write_text(_MODEL_CARD, encoding="utf-8")
    started = datetime.now(UTC).replace(tzinfo=None)

    with staged_write(state_dir) as session:
        con = session.con
        # the tables from their one DDL (ews/tables_warehouse.sql), as a run creates them
        con.execute(f'DROP TABLE IF EXISTS "{FEATURES_TABLE}"')
        create_tables(con, "warehouse", [*SAMPLE_TABLES, FEATURES_TABLE], feature_names=features)
        con.execute(sql["create_features_long"])
        for table in SAMPLE_TABLES:
            con.execute(f'DELETE FROM "{table}"')
        for table in ("validation_results", "quarantine_rows"):
            con.execute(f"DELETE FROM {table} WHERE run_id LIKE 'sample-%'")
        con.execute(sql["create_pupils"], {"schools": schools, "schools_per_network": schools_per_network,
                                           "pupils": pupils})
        con.execute(sql["insert_model"], {
            "model_id": MODEL_ID, "term": str(parsed[0]), "as_of_date": as_of[str(parsed[0])],
            "label_cutoff": training_as_of, "rows": pupils * 4, "feature_names": json.dumps(features),
            "metrics_json": json.dumps({"precision_at_k": 0.41, "recall_at_k": 0.37, "auc": 0.78}),
            "card_markdown": str(card_path.relative_to(state_dir))})
        previous_run = ""
        # Features one as-of date at a time (the long form of all dates would not fit in memory at
        # national size): the first date is the model's training data, the others are the terms.
        for index, (feature_term, day) in enumerate([(training_term, training_as_of), *as_of.items()]):
            con.execute(sql["clear_features_long"])
            con.execute(sql["insert_features_long"], {"as_of_date": day, "term": feature_term, "features": features,
                                                      "units": units, "term_index": index})
            con.execute(sql["insert_features"])
            if index == 0:
                continue
            term = str(parsed[index - 1])
            run_id = run_ids[term]
            params = {"run_id": run_id, "term": term, "as_of_date": as_of[term], "model_id": MODEL_ID,
                      "term_index": index}
            con.execute(sql["insert_scores"], params)
            con.execute(sql["insert_flags"], {"run_id": run_id, "previous_run_id": previous_run,
                                              "capacity": capacity, "reasons": REASONS_DA})
            con.execute(sql["insert_explanations"], {
                "run_id": run_id, "term": term, "as_of_date": as_of[term], "base_value": BASE_VALUE,
                "model_id": MODEL_ID, "all_pupils": explain_all_pupils and index == len(parsed)})
            con.execute(sql["insert_validation"], {"run_id": run_id, "term": term, "term_index": index,
                                                   "rows": pupils * 20})
            con.execute(sql["insert_quarantine"], {"run_id": run_id, "term": term, "term_index": index})
            previous_run = run_id
        session.identity.execute("DELETE FROM identity_pupils")
        identity_rows = con.execute("SELECT pupil_id, school_code, grade FROM sample_pupils").df()
        session.identity.register("sample_identity", identity_rows)
        session.identity.execute("CREATE OR REPLACE TEMP TABLE sample_pupils AS SELECT * FROM sample_identity")
        session.identity.unregister("sample_identity")
        session.identity.execute(sql["insert_identity"], {
            "first_names": FIRST_NAMES, "last_names": LAST_NAMES, "school_year": parsed[-1].school_year})

    for index, term in enumerate([str(t) for t in parsed]):
        _record_run(state_dir, run_ids[term], term, as_of[term], started + timedelta(minutes=index), pupils)
    return SampleState(state_dir, config_path, [str(t) for t in parsed], run_ids, network_ids, school_codes,
                       school_network, pupils, as_of)


def _feature_list() -> tuple[list[str], list[str]]:
    try:
        from features.catalogue import FEATURES
    except ImportError:
        return (["absence_total_pct_6m", "test_reading_latest_z", "contacts_ppr_12m", "absence_concerning_12m"],
                ["pct", "z", "antal", "flag"])
    chosen = [f for f in FEATURES if f.name != "grade"]
    return [f.name for f in chosen], [f.unit for f in chosen]


def _record_run(state_dir: Path, run_id: str, term: str, as_of: date, started: datetime, pupils: int) -> None:
    attempt = record_run_start(state_dir, {
        "run_id": run_id, "term": term, "as_of_date": as_of, "config_hash": "sample", "code_version": "sample",
        "data_snapshot": "sample", "started_at": started})
    run_dir = state_dir / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    sources = pd.DataFrame([
        {"source": "pupils", "file": "elever_2025-26.csv", "file_sha256": "0" * 64, "rows_read": pupils,
         "rows_loaded": pupils, "rows_quarantined": 0},
        {"source": "absence", "file": "fravaer_2025-26.csv", "file_sha256": "1" * 64, "rows_read": pupils * 20,
         "rows_loaded": pupils * 20 - 3, "rows_quarantined": 3},
    ])
    manifest = {"run_id": run_id, "term": term, "as_of_date": str(as_of), "status": "succeeded",
                "warehouse": "warehouse.duckdb",
                "sources": [{"name": r["source"], "file": r["file"], "rows_read": r["rows_read"],
                             "rows_loaded": r["rows_loaded"], "rows_quarantined": r["rows_quarantined"]}
                            for r in sources.to_dict("records")],
                "outputs": {"flags": "flags_pupil_term"}}
    manifest_path = run_dir / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    (run_dir / "validation_report.html").write_text(
        "<!doctype html><html lang='da'><title>Validering</title><h1>Valideringsrapport</h1>"
        "<p>Syntetisk kørsel: alle regler undtagen to er opfyldt.</p></html>", encoding="utf-8")
    record_run_end(state_dir, run_id, attempt, "succeeded", started + timedelta(seconds=42), None,
                   str(manifest_path), sources)


_MODEL_CARD = """# Modelkort: sample-model-1

**Formål.** Screening fra 5. klasse af elever i risiko for at blive vurderet ikke-uddannelsesparat.
Et flag er et signal til faglig vurdering, aldrig en afgørelse.

| Mål | Værdi |
|---|---|
| Præcision ved listens længde | 0,41 |
| Genfinding ved listens længde | 0,37 |

Syntetisk model til test af appen; tallene betyder intet.
"""
