"""Process settings: paths and secrets, from ``EWS_*`` environment variables or ``.env``."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from datetime import date
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The label that turns a secret into the audit chain's key (a key of its own, never the secret).
AUDIT_KEY_LABEL = b"ews audit chain v1"


class Settings(BaseSettings):
    """Where the system keeps its state, and the secrets it needs.

    Attributes:
        state_dir: Folder for the warehouse, identity store, run folders and Prefect's home.
        config_path: The municipality config; defaults to the synthetic municipality's.
        inbox: Folder with the municipality's export files; defaults to the synthetic ones.
        pseudonym_key: Key for the keyed hash that replaces CPR numbers. When unset, a random
            key is created once in ``state_dir/.pseudonym_key`` (mode 600) and reused.
        audit_key: Secret of the keyed hash chain over the review app's audit log and reviews
            (``EWS_AUDIT_KEY``). When unset, the chain key is derived from the pseudonymisation
            key with a label of its own. Keep it outside the state folder in production, so that
            someone who can edit ``app.sqlite`` cannot also re-sign it.
        today: Overrides today's date (tests and replays); dates after it are "in the future".
        ingest_chunk_rows: Rows the ingest reads, types and checks at a time; memory grows
            with it (about 0.7 GB at 500,000), not with the size of the exports.
        compute_chunk_pupils: Pupils a chunk when scoring and explaining (``ews.compute``):
            the chunks run in a local process pool, or inside a fleet one after another in the
            run's own thread. The default keeps a Herning-sized run (about 5,000 pupils) in one
            chunk.
        compute_workers: Processes of the local pool for chunks outside Dask (0: every core).
        compute_on_dask: Inside a fleet, send a run's chunks to the Dask cluster (the run's
            thread secedes from its worker while they run). Off by default: every worker of a
            fleet already runs a municipality of its own, and the split saved at most about
            10 s of a national-sized fleet's largest run (docs/fleet.md).
        warehouse_memory_limit: DuckDB's memory cap for the warehouse a run writes (``"8GB"``);
            above it joins and aggregates spill to disk in the run's own folder. Unset: 8 GiB,
            or half the machine's memory when that is less.
        file_hash_cache: Reuse the SHA-256 of export files that did not change since an
            earlier run hashed them (``pipelines.file_hashes``); turn off for an inbox on a file
            system without a trustworthy status-change time (FAT, sshfs, some SMB servers).
    """

    model_config = SettingsConfigDict(env_prefix="EWS_", env_file=".env", extra="ignore")

    state_dir: Path = Path("data")
    config_path: Path | None = None
    inbox: Path | None = None
    pseudonym_key: SecretStr | None = None
    audit_key: SecretStr | None = None
    today: date | None = None
    ingest_chunk_rows: int = Field(default=500_000, ge=1000)
    compute_chunk_pupils: int = Field(default=10_000, ge=100)
    compute_workers: int = Field(default=0, ge=0)
    compute_on_dask: bool = False
    warehouse_memory_limit: str | None = Field(default=None, pattern=r"^\s*\d+(\.\d+)?\s*[KMGT]i?B\s*$")
    file_hash_cache: bool = True

    @property
    def synthetic_dir(self) -> Path:
        """Folder where ``ews synth`` writes the synthetic municipality by default."""
        return self.state_dir / "synthetic"

    @property
    def resolved_config_path(self) -> Path:
        """The config file in use."""
        return self.config_path or self.synthetic_dir / "municipality.yaml"

    @property
    def resolved_inbox(self) -> Path:
        """The export folder in use."""
        return self.inbox or self.synthetic_dir / "exports"

    @property
    def runs_dir(self) -> Path:
        """Folder with one sub-folder per run."""
        return self.state_dir / "runs"

    @property
    def prefect_home(self) -> Path:
        """``PREFECT_HOME`` for this state folder."""
        return self.state_dir / "prefect"

    def today_date(self) -> date:
        """Today's date, or the configured override."""
        return self.today or date.today()

    def key_bytes(self) -> bytes:
        """The pseudonymisation key, creating a local one on first use if none is configured."""
        if self.pseudonym_key is not None:
            return self.pseudonym_key.get_secret_value().encode()
        key_file = self.state_dir / ".pseudonym_key"
        if not key_file.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        return key_file.read_text().strip().encode()

    def audit_key_bytes(self) -> bytes:
        """The key of the audit chain: from ``EWS_AUDIT_KEY``, else derived from the pseudonym key.

        Either way the secret is passed through an HMAC with the label ``ews audit chain v1``,
        so the chain key is never the pseudonymisation key itself.
        """
        secret = self.audit_key.get_secret_value().encode() if self.audit_key is not None else self.key_bytes()
        return hmac.new(secret, AUDIT_KEY_LABEL, hashlib.sha256).digest()


def get_settings() -> Settings:
    """Read the settings from the environment (a fresh object each call)."""
    return Settings()
