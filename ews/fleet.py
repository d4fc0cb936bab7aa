"""The fleet config: many municipalities run by one operator, each kept apart (issue 16).

A shared operator (a municipal IT community, a regional service) runs the termly flow for many
municipalities. The fleet config (``fleet.yaml``, ``fleet_version: 1``) lists them; each has its
own state folder (warehouse, identity store, run log, models, review app), its own export
folder, its own municipality config and its own pseudonymisation key, and nothing crosses:

- no two municipalities share, or nest, a state folder or an export folder;
- every municipality's key is its own (two entries whose keys are equal are refused), and the
  fleet config names only *where* a key is (a file or an environment variable), never the key,
  so no key travels as a Prefect parameter or a Dask message;
- the operator's own folder (``state_dir``: fleet summaries, Prefect's home) holds no pupil
  data and lies inside no municipality's folder;
- each municipality's review app has its own port.

:func:`load_fleet_config` validates all of it before any municipality runs;
:func:`municipality_settings` builds the one :class:`~ews.settings.Settings` a municipality's
run uses, with every tenant field set explicitly (nothing is taken from ``EWS_*`` variables
that would be the same for every tenant).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ews.config import ConfigError, TermCalendar, read_yaml_mapping
from ews.settings import Settings

FLEET_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySource(_Strict):
    """Where a secret is: a file (one line, mode 600) or an environment variable, never the secret itself."""

    file: Path | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> KeySource:
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of 'file' or 'env'")
        return self

    def read(self) -> str:
        """The secret.

        Raises:
            ConfigError: When the file or variable is missing or empty (the message names
                where, never the value).
        """
        if self.file is not None:
            try:
                value = self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"key file {self.file}: cannot read it ({exc.strerror})") from None
            where = f"key file {self.file}"
        else:
            value = os.environ.get(self.env or "", "").strip()
            where = f"environment variable {self.env}"
        if not value:
            raise ConfigError(f"{where}: empty or not set")
        return value


class AppSettings(_Strict):
    """Where a municipality's review app (``ews serve``) listens."""

    host: str = "127.0.0.1"
    port: int = Field(ge=1024, le=65535)


class MunicipalityEntry(_Strict):
    """One municipality of the fleet: its folders, config and keys."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$",
                    description="Short name used in folder names, flow run names and the summary")
    name: str
    state_dir: Path
    config_path: Path
    inbox: Path
    pseudonym_key: KeySource
    audit_key: KeySource | None = None
    app: AppSettings
    enabled: bool = True


class DaskSettings(_Strict):
    """The Dask cluster the fleet runs on.

    With ``address`` unset, a local cluster is started for the run (``n_workers`` worker
    processes of ``threads_per_worker`` threads, each capped at ``memory_limit``); with an
    address (``tcp://scheduler:8786``), the run uses that existing cluster; with
    ``cluster_class`` (``dask_kubernetes.operator.KubeCluster``,
    ``dask_jobqueue.SLURMCluster``) and its ``cluster_kwargs``, the run starts that cluster
    and closes it at the end. Remote workers must see the municipalities' folders and key
    files at the same paths.
    """

    address: str | None = None
    cluster_class: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    cluster_kwargs: dict[str, Any] = Field(default_factory=dict)
    n_workers: int = Field(default=2, ge=1)
    threads_per_worker: int = Field(default=1, ge=1)
    processes: bool = True
    memory_limit: str = "6GiB"


class FleetConfig(_Strict):
    """The fleet: the operator's folder, the Dask cluster, the schedule, and the municipalities."""

    fleet_version: Literal[1]
    operator: str
    state_dir: Path
    dask: DaskSettings = DaskSettings()
    prefect_api_url: str | None = None
    terms: TermCalendar = Field(default_factory=TermCalendar, description=(
        "The calendar the fleet's schedule follows (its as-of days); each municipality's run still "
        "takes its as-of date from its own config"))
    schedule_hour: int = Field(default=6, ge=0, le=23)
    municipalities: list[MunicipalityEntry] = Field(min_length=1)

    def enabled(self) -> list[MunicipalityEntry]:
        """The municipalities that take part in runs."""
        return [entry for entry in self.municipalities if entry.enabled]

    def entry(self, municipality_id: str) -> MunicipalityEntry:
        """The municipality with this id.

        Raises:
            KeyError: When the fleet has no such municipality.
        """
        for entry in self.municipalities:
            if entry.id == municipality_id:
                return entry
        raise KeyError(municipality_id)


def _resolve(base: Path, path: Path) -> Path:
    return (path if path.is_absolute() else base / path).resolve()


def _resolved_document(document: dict, base: Path) -> dict:
    """Paths relative to the fleet file's folder made absolute (before validation)."""
    out = dict(document)
    if isinstance(out.get("state_dir"), str):
        out["state_dir"] = str(_resolve(base, Path(out["state_dir"])))
    entries = []
    for raw in out.get("municipalities") or []:
        if not isinstance(raw, dict):
            entries.append(raw)
            continue
        entry = dict(raw)
        for key in ("state_dir", "config_path", "inbox"):
            if isinstance(entry.get(key), str):
                entry[key] = str(_resolve(base, Path(entry[key])))
        for key in ("pseudonym_key", "audit_key"):
            source = entry.get(key)
            if isinstance(source, dict) and isinstance(source.get("file"), str):
                entry[key] = {**source, "file": str(_resolve(base, Path(source["file"])))}
        entries.append(entry)
    if "municipalities" in out:
        out["municipalities"] = entries
    return out


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def separation_problems(fleet: FleetConfig) -> list[str]:
    """What would let one municipality's data reach another's (empty when nothing).

    Checks folders (no shared or nested state or export folder, the operator's folder inside
    no municipality's), ids, app ports, and keys (each readable and different from every other
    municipality's; compared through a keyed digest, never printed).

    Args:
        fleet: A fleet config whose paths are absolute.

    Returns:
        One sentence per problem.
    """
    problems: list[str] = []
    entries = fleet.municipalities
    seen_ids: set[str] = set()
    for entry in entries:
        if entry.id in seen_ids:
            problems.append(f"municipality id '{entry.id}' is listed twice")
        seen_ids.add(entry.id)
    for i, a in enumerate(entries):
        if _inside(fleet.state_dir, a.state_dir):
            problems.append(f"the operator's state_dir {fleet.state_dir} lies inside {a.id}'s state folder")
        if _inside(a.state_dir, fleet.state_dir / "fleet_runs") or _inside(a.state_dir, fleet.state_dir / "prefect"):
            problems.append(f"{a.id}: state_dir {a.state_dir} lies inside the operator's own folders")
        for b in entries[i + 1:]:
            for what_a, path_a in (("state_dir", a.state_dir), ("inbox", a.inbox)):
                for what_b, path_b in (("state_dir", b.state_dir), ("inbox", b.inbox)):
                    if _inside(path_a, path_b) or _inside(path_b, path_a):
                        problems.append(f"{a.id}'s {what_a} ({path_a}) and {b.id}'s {what_b} ({path_b}) "
                                        "overlap: each municipality needs folders of its own")
            if (a.app.host, a.app.port) == (b.app.host, b.app.port):
                problems.append(f"{a.id} and {b.id} both have their review app on {a.app.host}:{a.app.port}")
    digests: dict[bytes, str] = {}
    salt = os.urandom(16)  # the digests live only in this call
    for entry in entries:
        try:
            secret = entry.pseudonym_key.read()
        except ConfigError as exc:
            problems.append(f"{entry.id}: pseudonym_key: {exc}")
            continue
        digest = hmac.new(salt, secret.encode(), hashlib.sha256).digest()
        if digest in digests:
            problems.append(f"{entry.id} and {digests[digest]} have the same pseudonymisation key: "
                            "each municipality needs a key of its own")
        else:
            digests[digest] = entry.id
        if entry.audit_key is not None:
            try:
                entry.audit_key.read()
            except ConfigError as exc:
                problems.append(f"{entry.id}: audit_key: {exc}")
    return problems


def load_fleet_config(path: Path) -> FleetConfig:
    """Read the fleet config and check it in full, the tenants' separation included.

    Paths may be relative to the fleet file's folder. Each municipality's own config is checked
    by its own run (a broken one stops that municipality alone).

    Args:
        path: The YAML file.

    Returns:
        The validated fleet, with absolute paths.

    Raises:
        ConfigError: With every problem found, each naming its place.
    """
    document = read_yaml_mapping(path, "fleet config not found (see docs/fleet.md for an example)")
    if document.get("fleet_version") != FLEET_VERSION:
        raise ConfigError(f"{path}: fleet_version is {document.get('fleet_version')!r}; "
                          f"this code reads version {FLEET_VERSION}")
    try:
        fleet = FleetConfig.model_validate(_resolved_document(document, path.resolve().parent))
    except ValidationError as exc:
        lines = [f"{path}: {exc.error_count()} problem(s) in the fleet config:"]
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "(top level)"
            lines.append(f"  - {where}: {error['msg']}")
        raise ConfigError("\n".join(lines)) from exc
    problems = separation_problems(fleet)
    if problems:
        raise ConfigError("\n".join([f"{path}: the municipalities are not kept apart:",
                                     *(f"  - {p}" for p in problems)]))
    return fleet


def municipality_settings(entry: MunicipalityEntry) -> Settings:
    """The settings of one municipality's run, read where the run happens (a Dask worker).

    Every tenant field (folders, config, keys) is set here, so an ``EWS_STATE_DIR`` or
    ``EWS_PSEUDONYM_KEY`` in the worker's environment or ``.env`` cannot make two municipalities
    share anything; operator-wide settings (chunk sizes, workers) still come from there.

    Args:
        entry: The municipality.

    Returns:
        Its settings.

    Raises:
        ConfigError: When a key cannot be read.
    """
    audit = entry.audit_key.read() if entry.audit_key is not None else None
    return Settings(state_dir=entry.state_dir, config_path=entry.config_path, inbox=entry.inbox,
                    pseudonym_key=entry.pseudonym_key.read(), audit_key=audit)


#: The municipality whose run publishes Prefect artifacts in this context (a fleet's subflow).
_ARTIFACT_OWNER: ContextVar[str | None] = ContextVar("ews_artifact_owner", default=None)


@contextmanager
def municipality_artifacts(municipality_id: str) -> Iterator[None]:
    """Give the Prefect artifacts of the run inside this block the municipality's own keys.

    Without it every municipality's subflow would publish under the same keys, and the Prefect
    UI's latest artifact of a key would be the municipality that finished last.

    Args:
        municipality_id: The fleet id (``[a-z0-9-]``, valid in an artifact key).
    """
    token = _ARTIFACT_OWNER.set(municipality_id)
    try:
        yield
    finally:
        _ARTIFACT_OWNER.reset(token)


def artifact_key(name: str) -> str:
    """The key of a run's artifact: ``name`` alone (``ews run``), or ``<id>-name`` in a fleet's subflow.

    Args:
        name: The artifact's own key, e.g. ``run-manifest``.

    Returns:
        The key to publish under.
    """
    owner = _ARTIFACT_OWNER.get()
    return name if owner is None else f"{owner}-{name}"
