"""End to end: a termly run writes while the app serves and a review is submitted.

The run (``ews run`` in another process, over a small synthetic municipality) copies the
live warehouse, works on the copy and swaps it in. Meanwhile the app must answer every
request, store the review, and afterwards show what the run wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ews.warehouse import WarehousePaths
from tests.dashboards.dashboard_helpers import AppEnv, LiveServer, csrf_of, login, pupil_links

TERM = "2025/26-H1"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipelines.synth import SynthParams, generate_municipality

    # A small municipality whose run still trains a model (one school, seven school years): the
    # test is about the app during a run, whose steps are the same at any size. `ews run` in a
    # fresh process with its own Prefect server: 49 s of CPU for 2 schools from 2016/17, 38 s here.
    out = tmp_path_factory.mktemp("synthetic-dashboards") / "synthetic"
    generate_municipality(out, SynthParams(seed=5, schools=1, pupils_per_grade=40, first_school_year="2019/20",
                                           last_term=TERM))
    return out


@pytest.mark.slow
def test_app_answers_and_stores_a_review_while_a_run_writes(env: AppEnv, live: LiveServer, synthetic: Path,
                                                            tmp_path: Path, prefect_api_url: str) -> None:
    # The sample's made-up run log would trip the run's volume check against the real exports.
    (env.state_dir / "runs.duckdb").unlink()
    paths = WarehousePaths(env.state_dir)
    before = paths.published()  # the sample's version; the run publishes a new one (issue 17)

    def writing() -> bool:
        return bool(list(paths.versions.glob("*.partial")))
    run_env = {**os.environ, "EWS_STATE_DIR": str(env.state_dir),
               "EWS_CONFIG_PATH": str(synthetic / "municipality.yaml"), "EWS_INBOX": str(synthetic / "exports"),
               "EWS_PSEUDONYM_KEY": "test-key-not-secret", "PREFECT_HOME": str(tmp_path / "prefect"),
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
               "PREFECT_API_URL": prefect_api_url}  # the session's server: no start-up of its own
    statuses: list[tuple[str, int]] = []
    with httpx.Client(base_url=live.url, timeout=30) as vera, httpx.Client(base_url=live.url, timeout=30) as stig:
        login(vera, "vera")
        login(stig, "stig")
        pupil = pupil_links(vera.get("/vejleder?vis=afventer").text)[0]
        form = vera.get(f"/elev/{pupil}").text
        run = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--term", TERM], env=run_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        reviewed_during_run = False
        try:
            deadline = time.monotonic() + 300
            while run.poll() is None and time.monotonic() < deadline:
                swapped = paths.published() != before
                # once the run's warehouse is swapped in, the sample pupil is not in it (and is
                # rightly refused): ask for the pupil page only while the sample is live
                pages = [("/vejleder", vera), ("/drift/kvalitet", stig), ("/healthz", vera)]
                if not swapped:
                    pages.append((f"/elev/{pupil}", vera))
                for path, client in pages:
                    status = client.get(path).status_code
                    if path.startswith("/elev/") and paths.published() != before:
                        continue  # the swap happened while this request was served
                    statuses.append((path, status))
                if writing() and not reviewed_during_run:
                    response = vera.post(f"/elev/{pupil}/vurdering", data={
                        "csrf_token": csrf_of(form), "term": TERM, "decision": "familie_kontaktet"})
                    statuses.append(("review", response.status_code))
                    reviewed_during_run = True
                time.sleep(1.0)
            stdout, stderr = run.communicate(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
        # 6: the run succeeded but a model on 40 pupils a grade did not pass the publication gate
        assert run.returncode in (0, 6), stderr[-3000:]
        assert "nanobind" not in stderr  # no binding noise at exit (issue 17)
        assert reviewed_during_run, "the run ended before the staged copy was seen"
        assert len(statuses) > 10
        assert [s for s in statuses if s[1] not in (200, 303)] == []
        assert ("review", 303) in statuses

        assert [r["decision"] for r in env.store.reviews_of_pupil(pupil)] == ["familie_kontaktet"]
        assert paths.published() != before  # published
        runs = stig.get("/drift").text
        quality = stig.get("/drift/kvalitet").text
    run_ids = [p.name for p in (env.state_dir / "runs").iterdir() if not p.name.startswith("sample-")]
    assert len(run_ids) == 1 and run_ids[0] in runs  # the app reads the run log the run wrote
    assert "elever" in quality or "pupils" in quality  # and the validation results of the swapped-in file
    assert not writing()
