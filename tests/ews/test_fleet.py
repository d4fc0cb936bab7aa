"""The fleet config keeps municipalities apart (issue 16): folders, keys, ports, settings."""

from pathlib import Path

import pytest
import yaml

from ews.config import ConfigError
from ews.fleet import load_fleet_config, municipality_settings
from ews.pseudonym import pseudonymise


def _entry(name: str, port: int, **changes) -> dict:
    entry = {"id": name, "name": f"{name.title()} Kommune", "state_dir": f"tenants/{name}",
             "config_path": f"tenants/{name}/municipality.yaml", "inbox": f"inboxes/{name}",
             "pseudonym_key": {"file": f"keys/{name}.key"}, "app": {"port": port}}
    entry.update(changes)
    return entry


def _write(tmp_path: Path, entries: list[dict], keys: dict[str, str] | None = None, **top) -> Path:
    (tmp_path / "keys").mkdir(exist_ok=True)
    for name, key in (keys or {e["id"]: f"key-of-{e['id']}" for e in entries}).items():
        (tmp_path / "keys" / f"{name}.key").write_text(key + "\n")
    document = {"fleet_version": 1, "operator": "Test IT-fællesskab", "state_dir": "operator",
                "municipalities": entries, **top}
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def test_a_valid_fleet_resolves_paths_against_its_file(tmp_path):
    fleet = load_fleet_config(_write(tmp_path, [_entry("alpha", 8101), _entry("beta", 8102)]))
    assert [e.id for e in fleet.enabled()] == ["alpha", "beta"]
    assert fleet.state_dir == (tmp_path / "operator").resolve()
    assert fleet.entry("beta").inbox == (tmp_path / "inboxes" / "beta").resolve()
    assert fleet.entry("alpha").pseudonym_key.file == (tmp_path / "keys" / "alpha.key").resolve()
    assert fleet.dask.address is None and fleet.dask.processes


def test_two_municipalities_with_one_key_are_refused_without_printing_it(tmp_path):
    path = _write(tmp_path, [_entry("alpha", 8101), _entry("beta", 8102)],
                  keys={"alpha": "the-same-secret", "beta": "the-same-secret"})
    with pytest.raises(ConfigError) as caught:
        load_fleet_config(path)
    assert "beta and alpha have the same pseudonymisation key" in str(caught.value)
    assert "the-same-secret" not in str(caught.value)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"state_dir": "tenants/alpha"}, "alpha's state_dir"),  # the same state folder
    ({"state_dir": "tenants/alpha/beta"}, "overlap"),  # one inside the other
    ({"inbox": "tenants/alpha/inbox"}, "alpha's state_dir"),  # an inbox inside another's state
    ({"inbox": "inboxes/alpha"}, "alpha's inbox"),  # a shared inbox
    ({"app": {"port": 8101}}, "both have their review app on 127.0.0.1:8101"),
    ({"id": "alpha"}, "municipality id 'alpha' is listed twice"),
])
def test_shared_or_nested_folders_ports_and_ids_are_refused(tmp_path, changes, expected):
    beta = _entry("beta", 8102, **changes)
    keys = {"alpha": "key-a", "beta": "key-b"}
    path = _write(tmp_path, [_entry("alpha", 8101), beta], keys=keys)
    if changes.get("id") == "alpha":  # both entries read keys/alpha.key: give beta its own file
        (tmp_path / "keys" / "alpha2.key").write_text("key-c")
        document = yaml.safe_load(path.read_text())
        document["municipalities"][1]["pseudonym_key"] = {"file": "keys/alpha2.key"}
        path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as caught:
        load_fleet_config(path)
    assert expected in str(caught.value)


def test_the_operator_folder_inside_a_municipality_and_a_missing_key_are_refused(tmp_path):
    path = _write(tmp_path, [_entry("alpha", 8101), _entry("beta", 8102)], keys={"alpha": "key-a"},
                  state_dir="tenants/alpha/operator")
    with pytest.raises(ConfigError) as caught:
        load_fleet_config(path)
    message = str(caught.value)
    assert "lies inside alpha's state folder" in message
    assert "beta: pseudonym_key: key file" in message and "cannot read it" in message


def test_a_key_source_names_a_file_or_a_variable_never_the_key(tmp_path, monkeypatch):
    entries = [_entry("alpha", 8101, pseudonym_key={"env": "FLEET_TEST_KEY_ALPHA"}),
               _entry("beta", 8102, pseudonym_key={"file": "keys/beta.key", "env": "X"})]
    with pytest.raises(ConfigError, match="give exactly one of 'file' or 'env'"):
        load_fleet_config(_write(tmp_path, entries, keys={"beta": "key-b"}))
    entries[1]["pseudonym_key"] = {"file": "keys/beta.key"}
    path = _write(tmp_path, entries, keys={"beta": "key-b"})
    with pytest.raises(ConfigError, match="environment variable FLEET_TEST_KEY_ALPHA: empty or not set"):
        load_fleet_config(path)
    monkeypatch.setenv("FLEET_TEST_KEY_ALPHA", "key-a")
    assert load_fleet_config(path).entry("alpha").pseudonym_key.env == "FLEET_TEST_KEY_ALPHA"


def test_each_municipality_gets_its_own_settings_whatever_the_environment_says(tmp_path, monkeypatch):
    fleet = load_fleet_config(_write(tmp_path, [_entry("alpha", 8101), _entry("beta", 8102)]))
    monkeypatch.setenv("EWS_STATE_DIR", str(tmp_path / "shared"))
    monkeypatch.setenv("EWS_PSEUDONYM_KEY", "one-key-for-all")
    monkeypatch.setenv("EWS_AUDIT_KEY", "one-audit-key-for-all")
    alpha, beta = (municipality_settings(fleet.entry(name)) for name in ("alpha", "beta"))
    assert alpha.state_dir == fleet.entry("alpha").state_dir != beta.state_dir
    assert alpha.resolved_inbox == fleet.entry("alpha").inbox
    assert (alpha.key_bytes(), beta.key_bytes()) == (b"key-of-alpha", b"key-of-beta")
    assert alpha.audit_key is None and alpha.audit_key_bytes() != beta.audit_key_bytes()
    # the same CPR number is a different pupil id in each municipality
    assert pseudonymise("0101121234", alpha.key_bytes()) != pseudonymise("0101121234", beta.key_bytes())


def test_a_wrong_version_or_shape_says_where(tmp_path):
    path = _write(tmp_path, [_entry("alpha", 8101)])
    document = yaml.safe_load(path.read_text())
    document["fleet_version"] = 2
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="fleet_version is 2"):
        load_fleet_config(path)
    document["fleet_version"] = 1
    document["municipalities"][0]["id"] = "Alpha Kommune"
    document["dask"] = {"n_workers": 0}
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as caught:
        load_fleet_config(path)
    assert "municipalities.0.id" in str(caught.value) and "dask.n_workers" in str(caught.value)


def test_the_fleet_deployment_runs_on_the_fleet_calendar_s_as_of_days(tmp_path):
    from pipelines.fleet import build_fleet_deployment

    path = _write(tmp_path, [_entry("alpha", 8101)], terms={"h1": {"start": "08-01", "end": "01-31", "as_of": "11-20"}},
                  schedule_hour=5)
    deployment = build_fleet_deployment(path)
    assert sorted(s.schedule.cron for s in deployment.schedules) == ["0 5 15 4 *", "0 5 20 11 *"]
    assert deployment.parameters == {"fleet_path": str(path.resolve())}
    assert deployment.flow_name == "fleet-termly-run-scheduled"


def test_the_task_runner_follows_the_dask_settings():
    from ews.fleet import DaskSettings
    from pipelines.fleet import task_runner

    local = task_runner(DaskSettings(n_workers=3, memory_limit="2GiB"))
    assert local.cluster_class.endswith("LocalCluster") or "LocalCluster" in str(local.cluster_class)
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["host"] == "127.0.0.1"
    assert task_runner(DaskSettings(processes=False, n_workers=3)).cluster_kwargs["n_workers"] == 1
    assert task_runner(DaskSettings(address="tcp://10.0.0.5:8786")).address == "tcp://10.0.0.5:8786"
    started = task_runner(DaskSettings(cluster_class="distributed.SpecCluster", cluster_kwargs={"name": "ews"}))
    assert started.cluster_kwargs == {"name": "ews"}
    with pytest.raises(ConfigError, match="no_such_cluster_package.SLURMCluster cannot be imported"):
        task_runner(DaskSettings(cluster_class="no_such_cluster_package.SLURMCluster"))


def test_a_cluster_on_other_machines_needs_a_prefect_server_its_workers_reach(tmp_path, monkeypatch):
    from pipelines.fleet import run_fleet

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    path = _write(tmp_path, [_entry("alpha", 8101)], dask={"address": "tcp://10.0.0.5:8786"})
    with pytest.raises(ConfigError, match="needs a Prefect server its workers reach"):
        run_fleet("2025/26-H1", path)


def test_artifact_keys_are_the_municipality_s_own_only_inside_its_block():
    from ews.fleet import artifact_key, municipality_artifacts

    assert artifact_key("run-manifest") == "run-manifest"
    with municipality_artifacts("ikast-brande"):
        assert artifact_key("run-manifest") == "ikast-brande-run-manifest"
    assert artifact_key("run-manifest") == "run-manifest"
