"""What the deploy user may run as root, and the root-owned file installer it runs.

The deploy user (Pulumi's remote commands, and operators over SSH) gets sudo for exactly:
- the file installer, `clipper-install-files`, which writes a bundle read from stdin only to the
  paths `installer_allows` accepts (Clipper's own config dirs and `clipper-*` scripts and units);
- the host programs `clipper-release` and `clipper-backup` (any subcommand) and the
  `clipper-*-activate` scripts (no arguments);
- a fixed list of systemctl and apt commands: the backups' setup (components/backups.py) and
  the README's procedures (drain nginx, run a backup or a drill now, reboot).
Everything else is refused. The installer lives on the host from first boot (user-data), so
the command line Pulumi sends names a fixed root-owned program, not code.

This is least privilege, not a sandbox: whoever holds the deploy key can install a new
`clipper-release` and run it as root, which is what a deploy is. What it stops is everything
outside that path: a root shell, reading other files, writing outside the allowlist.
"""

from __future__ import annotations

from collections.abc import Sequence

from components.host.layout import DEPLOY_USER, HOST_SETUP_CONFIG, HOST_SETUP_SCRIPT
from components.renderers.backup_units import (
    BACKUP_SERVICE,
    BACKUP_TIMER,
    DRILL_SERVICE,
    DRILL_TIMER,
)

SUDOERS_FILE = "/etc/sudoers.d/90-clipper-deploy"
INSTALLER_PATH = "/usr/local/sbin/clipper-install-files"
SYSTEMCTL = "/usr/bin/systemctl"
# How the backups' setup calls apt (components/backups.py builds its commands from this).
APT_AS_ROOT = "env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600"
APT_INSTALL = "install -y --no-install-recommends"
PGDG_SETUP = "/usr/share/postgresql-common/pgdg/apt.postgresql.org.sh"

# Where the installer may write: anything under /etc/clipper or /etc/clipper-<role>, and under
# these folders ...
INSTALL_DIRS: tuple[str, ...] = ("/usr/local/lib/clipper/",)
# ... and files named clipper-* directly in these (scripts and systemd units).
INSTALL_NAMED_DIRS: tuple[str, ...] = ("/usr/local/bin", "/usr/local/sbin", "/etc/systemd/system")
INSTALL_NAME_PREFIX = "clipper-"
# Never: the installer itself, and the setup script that cloud-init ran and the config it
# sources (renderers/cloud_init.py): the deploy user must not choose what a re-run of the setup
# executes as root.
INSTALL_NEVER: tuple[str, ...] = (INSTALLER_PATH, HOST_SETUP_SCRIPT, HOST_SETUP_CONFIG)


def installer_allows(path: str) -> bool:
    """Whether the file installer may write `path` (the same rule the host script applies)."""
    import posixpath

    if not path.startswith("/") or posixpath.normpath(path) != path or path in INSTALL_NEVER:
        return False
    parts = path.split("/")
    if (
        len(parts) > 3
        and parts[1] == "etc"
        and (parts[2] == "clipper" or parts[2].startswith(INSTALL_NAME_PREFIX))
    ):
        return True
    if any(path.startswith(folder) for folder in INSTALL_DIRS):
        return True
    folder, name = posixpath.split(path)
    return folder in INSTALL_NAMED_DIRS and name.startswith(INSTALL_NAME_PREFIX)


_INSTALLER = '''\
#!/usr/bin/python3 -I
"""Clipper file installer (components/renderers/sudoers.py): installs a bundle read from stdin,
{{"files": [{{"path", "mode", "content"}}]}}, as root-owned files, all or nothing. It writes only
under /etc/clipper, /etc/clipper-*, {dirs} or clipper-* files directly in {named}; any other
path refuses the whole bundle."""
import json, os, posixpath, sys, tempfile

DIRS = {dirs!r}
NAMED_DIRS = {named!r}
NEVER = {never!r}
PREFIX = {prefix!r}


def allowed(path):
    if not path.startswith("/") or posixpath.normpath(path) != path or path in NEVER:
        return False
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "etc" and (
        parts[2] == "clipper" or parts[2].startswith(PREFIX)
    ):
        return True
    if any(path.startswith(folder) for folder in DIRS):
        return True
    folder, name = posixpath.split(path)
    return folder in NAMED_DIRS and name.startswith(PREFIX)


# `--root DIR` writes under DIR (tests); sudo lets the deploy user run it with no arguments.
if len(sys.argv) == 3 and sys.argv[1] == "--root":
    root = sys.argv[2].rstrip("/")
elif len(sys.argv) == 1:
    root = ""
else:
    sys.exit("usage: clipper-install-files [--root DIR] < bundle.json")
files = json.load(sys.stdin)["files"]
refused = [f["path"] for f in files if not allowed(f["path"])]
if refused:
    sys.exit("clipper-install-files: refusing paths outside the allowlist: " + ", ".join(refused))
staged, report = [], []
try:
    for f in files:
        shown, mode, data = f["path"], int(f["mode"], 8), f["content"].encode()
        path = root + shown
        folder = os.path.dirname(path)
        os.makedirs(folder, mode=0o755, exist_ok=True)
        try:
            st = os.stat(path)
            owner_mode = (st.st_mode & 0o7777, st.st_uid, st.st_gid)
            with open(path, "rb") as h:
                same = h.read() == data and owner_mode == (mode, 0, 0)
        except FileNotFoundError:
            same = False
        verb = "unchanged" if same else "installed"
        report.append("%s %s (mode %04o, %d bytes)" % (verb, shown, mode, len(data)))
        if same:
            continue
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
        staged.append((tmp, path))
        os.fchown(fd, 0, 0)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as h:
            h.write(data)
            h.flush()
            os.fsync(h.fileno())
    for tmp, path in staged:
        os.replace(tmp, path)
    staged = []
    for folder in sorted({{os.path.dirname(root + f["path"]) for f in files}}):
        fd = os.open(folder, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
finally:
    for tmp, _ in staged:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
print("\\n".join(report))
'''


def render_file_installer() -> str:
    """The installer script (python3, stdlib only): stages every file as a temp file in its
    target folder (mode set before any byte is written, owner root) and renames them over their
    targets only when all are staged; refuses the bundle if any path is outside the allowlist."""
    return _INSTALLER.format(
        dirs=INSTALL_DIRS, named=INSTALL_NAMED_DIRS, never=INSTALL_NEVER,
        prefix=INSTALL_NAME_PREFIX,
    )  # fmt: skip


def _escape(command: str) -> str:
    """A command line as a sudoers Cmnd: `\\` before the characters sudoers treats specially."""
    out = command
    for char in ("\\", ",", ":", "=", "(", ")", "!"):
        out = out.replace(char, "\\" + char)
    return out


def backup_setup_commands(postgres_major: str) -> list[str]:
    """The root commands components/backups.py runs on the backup host (without `sudo -n`)."""
    return [
        f"{PGDG_SETUP} -y",
        f"{APT_AS_ROOT} update",
        f"{APT_AS_ROOT} {APT_INSTALL} postgresql-client-{postgres_major}",
        f"{APT_AS_ROOT} {APT_INSTALL} rclone",
        f"{SYSTEMCTL} daemon-reload",
        f"{SYSTEMCTL} enable --now {BACKUP_TIMER} {DRILL_TIMER}",
    ]


def operator_commands() -> list[str]:
    """Root commands the README's procedures run (besides clipper-release/-backup)."""
    units = ("nginx", "nginx.service", BACKUP_SERVICE, DRILL_SERVICE,
             BACKUP_SERVICE.removesuffix(".service"),
             DRILL_SERVICE.removesuffix(".service"))  # fmt: skip
    return [
        *(f"{SYSTEMCTL} {verb} {unit}" for verb in ("start", "stop") for unit in units[:2]),
        *(f"{SYSTEMCTL} start {unit}" for unit in units[2:]),
        f"{SYSTEMCTL} reboot",
    ]


def render_deploy_sudoers(postgres_major: str, extra: Sequence[str] = ()) -> str:
    """/etc/sudoers.d/90-clipper-deploy (mode 0440): the deploy user's only sudo rules.

    `postgres_major` names the backup client package; `extra` are more exact command lines.
    A command with `""` takes no arguments; `clipper-release`/`clipper-backup` take any.
    """
    exact = [*backup_setup_commands(postgres_major), *operator_commands(), *extra]
    # The apt commands go through `env`: sudo matches its full path.
    exact = [f"/usr/bin/{c}" if c.startswith("env ") else c for c in exact]
    lines = [
        "# The deploy user's sudo: exactly these, nothing else (components/renderers/sudoers.py).",
        f'Cmnd_Alias CLIPPER_FILES = {INSTALLER_PATH} ""',
        "Cmnd_Alias CLIPPER_PROGRAMS = /usr/local/bin/clipper-release, "
        "/usr/local/bin/clipper-backup, "
        '/usr/local/sbin/clipper-*-activate ""',
        "Cmnd_Alias CLIPPER_COMMANDS = " + ", \\\n    ".join(_escape(c) for c in exact),
        f"{DEPLOY_USER} ALL=(root) NOPASSWD: CLIPPER_FILES, CLIPPER_PROGRAMS, CLIPPER_COMMANDS",
    ]
    return "\n".join(lines) + "\n"
