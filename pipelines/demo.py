"""``ews demo``: the synthetic municipality through the whole termly pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from ews.settings import get_settings
from ews.terms import Term
from pipelines.manifest import write_manifest

DEMO_TERM = "2025/26-H1"


def _synth_marker(out: Path) -> Path:
    return out / ".synth-params.json"


def ensure_synthetic(out: Path, params: Any, console: Console) -> None:
    """Write the synthetic municipality unless the same parameters were written already.

    Args:
        out: Target folder.
        params: ``SynthParams``.
        console: Where to say what happens.
    """
    from dataclasses import asdict

    from pipelines.synth import generate_municipality

    wanted = json.dumps(asdict(params), sort_keys=True)
    marker = _synth_marker(out)
    if marker.exists() and marker.read_text() == wanted:
        console.print(f"synthetic municipality already in {out} (same parameters)")
        return
    with console.status("writing the synthetic municipality"):
        generate_municipality(out, params)
    marker.write_text(wanted)
    console.print(f"wrote the synthetic municipality to {out}")


def run_demo(*, pupils_per_grade: int = 1000, schools: int = 20,
             console: Console | None = None, params: Any | None = None) -> dict[str, Any]:
    """Synthesise, run the previous and the current term, and summarise.

    Args:
        pupils_per_grade: Pupils per grade.
        schools: Number of schools.
        console: Where to print progress and the summary.
        params: The synthetic municipality's ``SynthParams`` in full (size, seed, span),
            instead of ``pupils_per_grade`` and ``schools``; its ``last_term`` must be the demo
            term. The tests' shared finished run uses it for a small municipality.

    Returns:
        The manifest of the current term's run.
    """
    from pipelines.flows import termly_flow
    from pipelines.synth import SynthParams

    console = console or Console(stderr=True)
    settings = get_settings()
    params = params or SynthParams(schools=schools, pupils_per_grade=pupils_per_grade, last_term=DEMO_TERM)
    if params.last_term != DEMO_TERM:
        raise ValueError(f"the demo runs {DEMO_TERM}; the synthetic data end in {params.last_term}")
    ensure_synthetic(settings.synthetic_dir, params, console)
    manifest: dict[str, Any] = {}
    for term in (str(Term.parse(DEMO_TERM).previous()), DEMO_TERM):
        with console.status(f"termly run {term}") as status:
            manifest = termly_flow(term, progress=lambda m, t=term: status.update(f"termly run {t}: {m}"))
        console.print(f"run {manifest['run_id']} ({term}): {manifest['status']} "
                      f"in {manifest['duration_seconds']} s")
    manifest["outputs"]["reason_agreement"] = _reason_agreement(manifest, settings)
    write_manifest(manifest, Path(manifest["outputs"]["manifest"]))
    _summarise(manifest, console)
    return manifest


def _reason_agreement(manifest: dict[str, Any], settings: Any) -> dict[str, Any]:
    """How often the flagged pupils' reasons name a cause the generator knows (demo only).

    The pipeline never reads the ground truth; the demo does, after the run, because it knows
    the municipality is synthetic.
    """
    from ews.warehouse import open_readonly
    from flags.agreement import read_ground_truth, reason_agreement
    from flags.selection import read_flag_lists

    with open_readonly(settings.state_dir) as con:
        flags = read_flag_lists(con, manifest["run_id"])
    truth = read_ground_truth(settings.synthetic_dir / "ground_truth" / "pupils.csv", settings.key_bytes())
    return reason_agreement(flags, truth)


def _summarise(manifest: dict[str, Any], console: Console) -> None:
    read = sum(s["rows_read"] for s in manifest["sources"])
    quarantined = sum(s["rows_quarantined"] for s in manifest["sources"])
    console.print("\n[bold]Demo done.[/]")
    console.print(f"  warehouse:   {manifest['warehouse']}")
    console.print(f"  rows read:   {read:,} from {len(manifest['sources'])} files "
                  f"({quarantined:,} quarantined with a reason)")
    for key, value in manifest["outputs"].items():
        if isinstance(value, str):
            console.print(f"  {key}: {value}")
        elif key == "reason_agreement":
            console.print(f"  reasons vs. the generator's causes: {value.get('share')} of flagged pupils "
                          f"have a reason naming a true cause (top reason: {value.get('top1_share')})")
        elif key == "uu_worklists":
            console.print(f"  flag lists:  {len(value)} networks, "
                          f"{sum(v['flagged'] for v in value)} pupils flagged; UU working lists in "
                          "uu_worklists/ (networks get their lists from 'ews serve' after review)")
    gate = manifest.get("gate")
    if gate is not None:
        console.print("  publication gate: " + ("passed: the lists are the model's" if gate["passed"] else
                      f"[bold red]NOT passed[/] ({'; '.join(gate['reasons'])}); published: {gate['published']}"))
    console.print("  next: 'ews serve' for the review app, 'ews evaluate' for the model's figures")
