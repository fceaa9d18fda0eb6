"""``splitbrain report``: the audit HTML, Allure 3 and JUnit reports from recorded results.

Reads one or more results directories (what ``splitbrain validate`` and
``splitbrain chaos`` write) and never re-runs anything. ``--verify DIR``
recomputes the SHA-256 manifest of a report directory and names every file
that changed since.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "build the audit HTML, Allure and JUnit reports from recorded results (never re-runs)"
EXIT_CODES = """\
exit codes:
  0  report written (or, with --verify, every file matches the manifest)
  1  --verify: a file was altered, removed or added (each one is named)
  2  bad command line
  3  report written, but some recorded files could not be read (each one is named;
     the report shows everything else)
  4  no report: no readable result record, or --out / --verify DIR unusable

The exit code says whether the report was made, not whether the site passed:
`splitbrain validate` and `splitbrain chaos` exit 1 when a check fails."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXIT_CODES
    parser.add_argument("results", nargs="*", type=Path, metavar="RESULTS",
                        help="results directories (run.json, results/*.json, attachments/); "
                             "default: the newest under reports/")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="report directory (default: RESULTS/report; replaced whole "
                             "when the new report is complete)")
    parser.add_argument("--verify", type=Path, default=None, metavar="DIR",
                        help="check a report directory against its manifest.sha256 instead")
    parser.add_argument("--no-allure", action="store_true",
                        help="skip the Allure 3 HTML (allure-results are still written)")


def _newest_results(base: Path) -> list[Path]:
    candidates = [p.parent for p in base.glob("*/run.json")] + \
        [p.parent.parent for p in base.glob("*/results/*.json")]
    if not candidates:
        from harness.report.records import NoResultsError

        err = NoResultsError(f"no results directory under {base}/; name one, or run "
                             "`splitbrain validate` or `splitbrain chaos` first")
        err.exit_code = 4
        raise err
    return [max(set(candidates), key=lambda p: p.stat().st_mtime)]


def _verify(directory: Path) -> int:
    from harness.report.manifest import ManifestError, verify

    try:
        found = verify(directory)
    except ManifestError as exc:
        exc.exit_code = 4
        raise
    for line in found.lines():
        print(line)
    if found.intact:
        print(f"splitbrain report: {directory}: all {found.checked} files match "
              "manifest.sha256")
        return 0
    print(f"splitbrain report: {directory}: {len(found.altered)} altered, "
          f"{len(found.missing)} missing, {len(found.added)} added since the report "
          "was made", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    from harness.errors import SplitbrainError
    from harness.report.build import build_report
    from harness.report.console import Console

    if args.verify is not None:
        if args.results or args.out:
            raise _usage("--verify DIR takes no RESULTS and no --out")
        return _verify(args.verify)
    console = Console()
    dirs = list(args.results) or _newest_results(Path("reports"))
    try:
        built = build_report(dirs, args.out, allure=not args.no_allure,
                             progress=console.line)
    except SplitbrainError as exc:
        exc.exit_code = 4
        raise
    for p in built.problems:
        console.error("report", f"cannot use {p}")
    counts: dict[str, int] = {}
    for rec in built.run.records:
        counts[str(rec.result.result)] = counts.get(str(rec.result.result), 0) + 1
    summary = ", ".join(f"{n} {w}" for w, n in sorted(counts.items()))
    console.result(str(built.run.worst), f"{len(built.run.records)} results ({summary})")
    for note in built.notes:
        console.line(note)
    print(f"JUnit XML      {built.junit}")
    print(f"allure-results {built.allure_results}")
    if built.allure is not None:
        print(f"Allure report  {built.allure}")
    print(f"manifest       {built.out / 'manifest.sha256'} "
          f"(check later: splitbrain report --verify {built.out})")
    print(f"audit report   {built.audit}", flush=True)
    return 3 if built.problems else 0


def _usage(message: str) -> Exception:
    from harness.errors import SplitbrainError

    err = SplitbrainError(message)
    err.exit_code = 2
    return err
