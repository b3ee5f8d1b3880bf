"""Command line of the geokv package: ``python -m geokv repair DIR``.

``repair`` salvages a damaged embedded store (see ``geokv.repair``) and prints what it did;
the exit status is 0 on success, 1 when the store could not be repaired or is open.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import geokv


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m geokv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("repair", help="salvage a damaged embedded store (no handle may hold it open)")
    rep.add_argument("dir", help="the store's data directory")
    args = parser.parse_args(argv)
    try:
        report = geokv.repair(args.dir)
    except geokv.GeokvError as e:
        print(f"geokv repair: {e}", file=sys.stderr)
        return 1
    if report.tables_salvaged == 0:
        print(f"{args.dir}: no damage found; {report.keys_kept} keys")
    else:
        print(f"{args.dir}: rebuilt {report.tables_salvaged} damaged table(s); {report.keys_kept} keys kept "
              "(entries on unreadable pages are lost)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
