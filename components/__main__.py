"""`python -m components plan|render`: the offline engine's command line.

    python -m components plan --stack staging [--json]
    python -m components render --stack staging --out build/staging
    python -m components ops --stack production status|rollback|logs|lock   (components/fleet)
    python -m components notify --stack production --result success ...  (CI, Slack)

Exit codes: 0 done, 2 invalid settings or usage (the message names the key), 1 anything else.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ops"]:
        # The fleet command runs against a deployed stack, not under mocks: its own parser.
        from components.fleet.cli import main as ops_main

        return ops_main(argv[1:])
    if argv[:1] == ["notify"]:
        from components.fleet.notify import main as notify_main

        return notify_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m components", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser("plan", help="list every resource the stack declares")
    plan.add_argument("--stack", required=True)
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument("--project-dir", type=Path, default=None, help=argparse.SUPPRESS)
    render = sub.add_parser("render", help="write every file the stack puts on a host")
    render.add_argument("--stack", required=True)
    render.add_argument("--out", required=True, type=Path)
    render.add_argument("--project-dir", type=Path, default=None, help=argparse.SUPPRESS)
    sub.add_parser("ops", help="the fleet command: ops --stack STACK status|rollback|logs|lock")
    sub.add_parser("notify", help="tell Slack what a pulumi up did (CI; SLACK_WEBHOOK_URL)")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from components.offline.plan import plan_json, plan_text
    from components.offline.render import write_host_files
    from components.offline.runner import PROJECT_DIR, run_program
    from components.settings import SettingsError

    try:
        run = run_program(args.stack, project_dir=args.project_dir or PROJECT_DIR)
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command == "plan":
        print(plan_json(run) if args.json else plan_text(run))
        return 0
    written = write_host_files(run, args.out)
    for path in written:
        print(path)
    print(f"{len(written)} files written under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
