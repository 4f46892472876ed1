"""`/etc/clipper/backup.json` (components/renderers/backup_units.py), validated."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

CONFIG_ENV = "CLIPPER_BACKUP_CONFIG"
DEFAULT_CONFIG = "/etc/clipper/backup.json"
SCHEMA_VERSION = 1
DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


@dataclass(frozen=True)
class Config:
    """/etc/clipper/backup.json: where the data is, where it goes, where state lives."""

    environment: str
    database: str
    db_admin_env_file: Path
    credentials_file: Path
    bucket: str
    endpoint: str
    region: str
    prefix: str
    work_dir: Path
    metrics_file: Path
    releases_file: Path
    config_files: tuple[Path, ...]
    pg_bin_dir: Path | None

    @property
    def state_dir(self) -> Path:
        """clipper-release's state dir (where releases.json is): the shared host lock's home."""
        return self.releases_file.parent

    @staticmethod
    def load(path: Path) -> Config:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path} is missing: the Pulumi program installs it") from None
        except ValueError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION:
            raise ConfigError(f"{path}: expected a JSON object with schema {SCHEMA_VERSION}")
        try:
            config = Config(
                environment=str(doc["environment"]),
                database=str(doc["database"]),
                db_admin_env_file=Path(doc["db_admin_env_file"]),
                credentials_file=Path(doc["credentials_file"]),
                bucket=str(doc["bucket"]),
                endpoint=str(doc["endpoint"]),
                region=str(doc["region"]),
                prefix=str(doc["prefix"]).strip("/"),
                work_dir=Path(doc["work_dir"]),
                metrics_file=Path(doc["metrics_file"]),
                releases_file=Path(doc["releases_file"]),
                config_files=tuple(Path(p) for p in doc.get("config_files", [])),
                pg_bin_dir=Path(doc["pg_bin_dir"]) if doc.get("pg_bin_dir") else None,
            )
        except KeyError as exc:
            raise ConfigError(f"{path}: missing key {exc}") from None
        if not DB_NAME_RE.match(config.database):
            raise ConfigError(f"{path}: database {config.database!r} is not a plain name")
        if not config.prefix or not _KEY_RE.match(config.prefix):
            raise ConfigError(f"{path}: prefix {config.prefix!r} is not a plain key prefix")
        return config
