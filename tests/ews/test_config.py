from pathlib import Path

import pytest
import yaml

from ews.config import ConfigError, build_config_document, config_hash, load_config


def _document():
    return build_config_document(
        "Testkommune", ["Nord", "Syd"],
        [{"id": "N1", "name": "Netværk 1", "area": "Nord", "capacity_per_term": 5}],
        [{"code": "S1", "name": "Skole 1", "area": "Nord", "network": "N1", "reports_absence": True}],
    )


def _write(tmp_path: Path, document) -> Path:
    path = tmp_path / "municipality.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_default_document_loads_and_hash_is_stable(tmp_path):
    config = load_config(_write(tmp_path, _document()))
    assert config.outcome == "upv_ikke_uddannelsesparat"
    assert config.tier_for(0.8).name == "meget høj"
    assert config_hash(config) == config_hash(load_config(_write(tmp_path, _document())))


def test_every_problem_is_reported_with_its_place(tmp_path):
    document = _document()
    document["networks"][0]["capacity_per_term"] = 0
    document["sources"][1]["columns"].pop("school_days")
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, document))
    message = str(caught.value)
    assert "networks.0.capacity_per_term" in message
    assert "school_days" in message and "sources.1" in message


def test_cross_references_are_checked(tmp_path):
    document = _document()
    document["schools"][0]["network"] = "N9"
    with pytest.raises(ConfigError, match=r"schools\[S1\].network 'N9' is not a network id"):
        load_config(_write(tmp_path, document))


def test_unknown_keys_and_versions_are_refused(tmp_path):
    document = _document()
    document["capacity"] = 3
    with pytest.raises(ConfigError, match="capacity"):
        load_config(_write(tmp_path, document))
    document = _document()
    document["config_version"] = 2
    with pytest.raises(ConfigError, match="config_version is 2"):
        load_config(_write(tmp_path, document))


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="ews synth"):
        load_config(tmp_path / "nope.yaml")
