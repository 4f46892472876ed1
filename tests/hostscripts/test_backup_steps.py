"""clipper-backup's backup steps without a bucket or a database: the upload order (the manifest
last), what a failed upload deletes, and the pg_dump version check. tests/host/
test_backup_restore.py runs whole backups against real PostgreSQL and a real rclone remote."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from clipper import backup_cli, errors
from clipper.backup_store import Postgres, Spaces


class RecordingBucket:
    """Stands in for clipper.backup_store.Spaces (rclone against DigitalOcean Spaces): keeps
    uploaded sizes in a dict and records every call. `listed_size` overrides what the listing
    says for a key (a truncated upload); `refuse_delete` makes delete fail like rclone would."""

    def __init__(self, listed_size: dict[str, int | None] | None = None) -> None:
        self.sizes: dict[str, int] = {}
        self.calls: list[tuple[str, str]] = []
        self.listed_size = listed_size or {}
        self.refuse_delete = False

    def upload(self, local: Path, key: str) -> None:
        self.calls.append(("upload", key))
        self.sizes[key] = local.stat().st_size

    def size_of(self, key: str) -> int | None:
        return self.listed_size[key] if key in self.listed_size else self.sizes.get(key)

    def delete(self, key: str) -> None:
        self.calls.append(("delete", key))
        if self.refuse_delete:
            raise errors.HostError(f"rclone deletefile {key} failed")
        self.sizes.pop(key, None)


class VersionedPostgres:
    """Stands in for clipper.backup_store.Postgres where only versions are read (psql's
    server_version_num and `pg_dump --version`)."""

    def __init__(self, server: int, pg_dump: tuple[int, str]) -> None:
        self.server, self.pg_dump = server, pg_dump

    def server_major(self) -> int:
        return self.server

    def tool_version(self, name: str) -> tuple[int, str]:
        assert name == "pg_dump"
        return self.pg_dump


@pytest.fixture
def files(tmp_path: Path) -> tuple[list[tuple[Path, str]], Path]:
    dump, archive, manifest = tmp_path / "db.dump", tmp_path / "c.tar.gz", tmp_path / "m.json"
    dump.write_bytes(b"d" * 300)
    archive.write_bytes(b"c" * 20)
    manifest.write_text("{}\n")
    return [(dump, "p/postgres/s.dump"), (archive, "p/config/s.tar.gz")], manifest


def upload(bucket: RecordingBucket, files: tuple[list[tuple[Path, str]], Path]) -> None:
    backup_cli.upload_backup(cast(Spaces, bucket), files[0], files[1], "p/postgres/s.json")


def test_the_manifest_is_uploaded_last_after_each_file_is_listed_at_its_size(
    files: tuple[list[tuple[Path, str]], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = RecordingBucket()
    upload(bucket, files)
    assert bucket.calls == [
        ("upload", "p/postgres/s.dump"),
        ("upload", "p/config/s.tar.gz"),
        ("upload", "p/postgres/s.json"),
    ]
    assert capsys.readouterr().out == (
        "clipper-backup: ==> uploading p/postgres/s.dump\n"
        "clipper-backup: ==> uploading p/config/s.tar.gz\n"
        "clipper-backup: ==> uploading the manifest p/postgres/s.json\n"
    )


def test_a_file_listed_at_the_wrong_size_stops_before_the_manifest_and_deletes_what_went_up(
    files: tuple[list[tuple[Path, str]], Path],
) -> None:
    bucket = RecordingBucket(listed_size={"p/config/s.tar.gz": 7})
    with pytest.raises(errors.HostError) as failed:
        upload(bucket, files)
    assert str(failed.value) == "p/config/s.tar.gz: the bucket lists 7 bytes, not 20"
    assert bucket.calls == [
        ("upload", "p/postgres/s.dump"),
        ("upload", "p/config/s.tar.gz"),
        ("delete", "p/config/s.tar.gz"),
        ("delete", "p/postgres/s.dump"),
    ]
    assert bucket.sizes == {}


def test_a_manifest_missing_from_the_listing_undoes_the_whole_backup_newest_first(
    files: tuple[list[tuple[Path, str]], Path],
) -> None:
    bucket = RecordingBucket(listed_size={"p/postgres/s.json": None})
    with pytest.raises(errors.HostError) as failed:
        upload(bucket, files)
    assert str(failed.value) == "p/postgres/s.json is not listed after its upload"
    assert [key for call, key in bucket.calls if call == "delete"] == [
        "p/postgres/s.json",
        "p/config/s.tar.gz",
        "p/postgres/s.dump",
    ]


def test_a_delete_that_fails_while_undoing_does_not_hide_the_upload_failure(
    files: tuple[list[tuple[Path, str]], Path],
) -> None:
    bucket = RecordingBucket(listed_size={"p/postgres/s.dump": 1})
    bucket.refuse_delete = True
    with pytest.raises(errors.HostError, match="the bucket lists 1 bytes, not 300"):
        upload(bucket, files)
    assert bucket.calls[-1] == ("delete", "p/postgres/s.dump")


def test_a_pg_dump_older_than_the_server_is_refused_with_the_package_to_install() -> None:
    pg = VersionedPostgres(17, (16, "16.4"))
    with pytest.raises(errors.HostError) as refused:
        backup_cli.check_client_version(cast(Postgres, pg))
    assert str(refused.value) == (
        "pg_dump 16.4 cannot dump a PostgreSQL 17 server: install postgresql-client-17"
    )


def test_a_pg_dump_as_new_as_the_server_or_newer_is_used_and_its_version_recorded(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for server, pg_dump in ((16, (16, "16.4")), (15, (17, "17.2"))):
        pg = VersionedPostgres(server, pg_dump)
        assert backup_cli.check_client_version(cast(Postgres, pg)) == (server, pg_dump[1])
        assert capsys.readouterr().out == (
            "clipper-backup: ==> checking the PostgreSQL client against the server\n"
            f"clipper-backup:    server {server}, pg_dump {pg_dump[1]}\n"
        )
