"""Clipper's host package: the code that runs on an app droplet, as root, with Python 3's
standard library only.

Two programs share it: `clipper-release` (blue-green deploy, rollback, status, migrate-force)
and `clipper-backup` (backup, list, restore, drill). Their launchers in /usr/local/bin put the
package's folder (/usr/local/lib/clipper) on sys.path and call `release_cli.main` or
`backup_cli.main`.

Shaped like Kamal's `lib/kamal/commands/`: `commands/` builds every docker, nginx, psql,
pg_dump, pg_restore and rclone invocation as a pure function that returns its argv; `decisions`
and `backup_plan` decide without touching anything; `runner.run` is the one place a process
starts. Shared pieces exist once: env files (`envfile`), atomic writes (`files`), the host lock
(`lock`), textfile metrics (`metrics`).
"""
