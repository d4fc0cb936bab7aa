"""Benchmarks of issue 6: page load times of the review app over real HTTP.

Run: ``.venv/bin/pytest bench/dashboards_pages.py --benchmark-only -q``
(``EWS_BENCH_NATIONAL=1`` for national size: 325,000 pupils in grades 5-9 at 1,300 schools in
325 networks, three terms, explanations of every pupil of the last term over 53 features; the
synthetic warehouse takes about 4-5 minutes to write. ``EWS_BENCH_STATE=/some/dir`` keeps it
between sessions.) Default: Herning size, 5,000 pupils at 20 schools.

Each timing is one GET from a logged-in client to uvicorn on 127.0.0.1, including opening the
warehouse snapshot, the access check, the audit-log write and rendering.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from dashboards.app import create_app
from dashboards.sample import write_sample_state
from dashboards.settings import DashboardSettings
from dashboards.store import AppStore
from ews.settings import Settings
from tests.dashboards.dashboard_helpers import PASSWORD, LiveServer, csrf_of, login, pupil_links

NATIONAL = os.environ.get("EWS_BENCH_NATIONAL") == "1"
SIZE = dict(schools=1300, schools_per_network=4, pupils_per_school=250) if NATIONAL else dict(
    schools=20, schools_per_network=4, pupils_per_school=250)
TERMS = ("2024/25-H1", "2024/25-H2", "2025/26-H1")


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    kept = os.environ.get("EWS_BENCH_STATE")
    target = Path(kept) if kept else tmp_path_factory.mktemp("bench-dashboards") / "state"
    marker = target / f".sample-{SIZE['schools']}"
    if not marker.exists():
        shutil.rmtree(target, ignore_errors=True)
        write_sample_state(target, terms=TERMS, **SIZE)
        marker.touch()
    (target / "app.sqlite").unlink(missing_ok=True)
    return target


@pytest.fixture(scope="module")
def clients(state: Path) -> Iterator[dict[str, object]]:
    store = AppStore(state / "app.sqlite", hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    store.add_user("vera", "Vera", "consultant", PASSWORD)
    store.assign("vera", "school", "S0001")
    store.assign("vera", "school", "S0005")
    store.add_user("nina", "Nina", "network_member", PASSWORD)
    store.assign("nina", "network", "N001")
    store.add_user("stig", "Stig", "steward", PASSWORD)
    app = create_app(Settings(state_dir=state, config_path=state / "municipality.yaml"), DashboardSettings(), store)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=300) as vera, \
            httpx.Client(base_url=live.url, timeout=300) as nina, httpx.Client(base_url=live.url, timeout=300) as stig:
        for client, user in ((vera, "vera"), (nina, "nina"), (stig, "stig")):
            login(client, user)
        pupils = pupil_links(vera.get("/vejleder").text)
        form = vera.get(f"/elev/{pupils[0]}").text
        for pupil in pupils[:: max(1, len(pupils) // 10)]:  # confirm some flags so the network sees them
            vera.post(f"/elev/{pupil}/vurdering", data={"csrf_token": csrf_of(form), "term": TERMS[-1],
                                                         "decision": "bekraeftet"})
        yield {"vera": vera, "nina": nina, "stig": stig, "pupil": pupils[0]}


def _get(client: httpx.Client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.text


def test_network_list(benchmark, clients) -> None:
    html = benchmark.pedantic(_get, args=(clients["nina"], "/netvaerk/N001"), rounds=15, warmup_rounds=1)
    assert re.search(r"/elev/[0-9a-f]{16}", html)


def test_pupil_page(benchmark, clients) -> None:
    html = benchmark.pedantic(_get, args=(clients["vera"], f"/elev/{clients['pupil']}"), rounds=15,
                              warmup_rounds=1)
    assert "Hvad trækker risikoen op og ned" in html


def test_consultant_list(benchmark, clients) -> None:
    benchmark.pedantic(_get, args=(clients["vera"], "/vejleder"), rounds=15, warmup_rounds=1)


def _download(client: httpx.Client, path: str) -> bytes:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.content


def test_network_export(benchmark, clients) -> None:
    data = benchmark.pedantic(_download, args=(clients["nina"], "/netvaerk/N001/eksport.csv"), rounds=15,
                              warmup_rounds=1)
    assert len(data.decode("utf-8-sig").splitlines()) > 2  # the sentence, the header, confirmed flags


def test_network_export_pdf(benchmark, clients) -> None:
    data = benchmark.pedantic(_download, args=(clients["nina"], "/netvaerk/N001/eksport.pdf"), rounds=15,
                              warmup_rounds=1)
    assert data.startswith(b"%PDF")


def test_network_export_xlsx(benchmark, clients) -> None:
    data = benchmark.pedantic(_download, args=(clients["nina"], "/netvaerk/N001/eksport.xlsx"), rounds=15,
                              warmup_rounds=1)
    assert data.startswith(b"PK")


def test_steward_stability_first_view(benchmark, clients) -> None:
    # The first view of the module computes the feature drift (PSI); later views use the app's cache.
    benchmark.pedantic(_get, args=(clients["stig"], "/drift/stabilitet"), rounds=1, iterations=1)


def test_steward_stability_cached(benchmark, clients) -> None:
    _get(clients["stig"], "/drift/stabilitet")
    benchmark.pedantic(_get, args=(clients["stig"], "/drift/stabilitet"), rounds=5, warmup_rounds=0)


def test_steward_quality(benchmark, clients) -> None:
    benchmark.pedantic(_get, args=(clients["stig"], "/drift/kvalitet"), rounds=5, warmup_rounds=0)
