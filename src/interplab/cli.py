"""The ``interplab`` command: ``interplab tour --out report.html``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interplab", description="A workbench for looking inside language models.")
    commands = parser.add_subparsers(dest="command", required=True)
    tour = commands.add_parser("tour", help="run the instruments on the demo models and write an HTML report")
    tour.add_argument("--out", default="report.html", help="where to write the report (default: report.html)")
    tour.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cpu)")
    args = parser.parse_args(argv)

    if args.command == "tour":
        from .tour import run

        result = run(args.out, device=args.device)
        print(f"wrote {result.path.resolve()}")
        if result.failed:
            print(f"sections that failed: {', '.join(result.failed)} (see the report)", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
