"""The Allure 3 HTML report, made by the npm ``allure`` CLI pinned in ``reports/package.json``.

``allure_cli()`` finds the command: ``$SPLITBRAIN_ALLURE`` if set, else
``reports/node_modules/allure`` of this checkout (installed by ``make`` with
``npm ci``), else ``allure`` on ``PATH``; each needs Node.js 20 or later.
``generate()`` writes one standalone ``index.html`` (the Awesome plugin's
``singleFile`` option) from an ``allure-results`` folder. Without Node or the
CLI the caller gets ``AllureUnavailable`` whose message says how to install it;
the audit report never depends on it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from harness.errors import SplitbrainError
from harness.report.allure_results import CATEGORIES

CHECKOUT = Path(__file__).resolve().parents[2]
REPORTS = CHECKOUT / "reports"
MIN_NODE = 20
HOW_TO_INSTALL = ("install Node.js >= 20 and run `make allure` (npm ci in reports/) "
                  "for the Allure report; the audit report does not need it")
TIMEOUT_S = 300
ANALYTICS = re.compile(
    r"<script[^>]*src=\"https://www\.googletagmanager\.com/[^\"]*\"[^>]*>\s*</script>\s*"
    r"(<script>(?:(?!</script>).)*?gtag\((?:(?!</script>).)*?</script>)?", re.DOTALL)


class AllureUnavailable(SplitbrainError):
    """The Allure 3 CLI (or Node.js) is not installed here."""


class AllureFailed(SplitbrainError):
    """The Allure 3 CLI ran and failed."""


def _node_major(node: str) -> int | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30,
                             check=False).stdout.strip()
        return int(out.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def allure_cli() -> list[str]:
    """The argv prefix that runs the Allure 3 CLI, or raise ``AllureUnavailable``."""
    override = os.environ.get("SPLITBRAIN_ALLURE")
    if override:
        return [override]
    node = shutil.which("node")
    if node is None:
        raise AllureUnavailable("Allure report skipped: Node.js is not installed; "
                                + HOW_TO_INSTALL)
    major = _node_major(node)
    if major is None or major < MIN_NODE:
        raise AllureUnavailable(f"Allure report skipped: Node.js {major or '?'} is older than "
                                f"{MIN_NODE}; {HOW_TO_INSTALL}")
    entry = REPORTS / "node_modules" / "allure" / "dist" / "index.js"
    if entry.is_file():
        return [node, str(entry)]
    on_path = shutil.which("allure")
    if on_path is not None:
        return [on_path]
    raise AllureUnavailable(f"Allure report skipped: the Allure 3 CLI is not installed "
                            f"({entry} not found); {HOW_TO_INSTALL}")


def generate(results: Path, out: Path, name: str) -> Path:
    """Render ``results`` (an allure-results folder) to ``out/index.html``; return it."""
    cli = allure_cli()
    results, out = results.resolve(), out.resolve()  # the CLI runs in results' parent
    config = results.parent / ".allurerc.json"
    config.write_text(json.dumps({
        "name": name,
        "output": str(out),
        # Allure 3 takes failure categories from its config (categories.json in the
        # results is for Allure 2 readers)
        "categories": CATEGORIES,
        "plugins": {"awesome": {"options": {"singleFile": True, "reportName": name}}},
    }))
    env = {**os.environ, "NO_COLOR": "1", "ALLURE_NO_ANALYTICS": "true"}
    try:
        done = subprocess.run([*cli, "generate", "--config", str(config), str(results)],
                              capture_output=True, text=True, timeout=TIMEOUT_S, env=env,
                              cwd=results.parent, check=False)
    except subprocess.TimeoutExpired:
        raise AllureFailed(f"allure generate took more than {TIMEOUT_S} s; "
                           "the audit report was written") from None
    finally:
        config.unlink(missing_ok=True)
    index = out / "index.html"
    if done.returncode != 0 or not index.is_file():
        raise AllureFailed(f"allure generate failed (exit {done.returncode}): "
                           f"{_first_error(done.stderr + done.stdout)}")
    index.write_text(offline(index.read_text(encoding="utf-8")), encoding="utf-8")
    return index


def _first_error(output: str) -> str:
    """The line of a Node failure that says what went wrong (not a stack frame)."""
    lines = [ln.strip() for ln in output.splitlines()
             if ln.strip() and not ln.strip().startswith("at ")]
    return next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else
                "no output")


def offline(html: str) -> str:
    """The report without its web-analytics tags (an audit report calls no one home).

    Allure's Awesome plugin always adds Google Analytics (its Allure 2 plugin
    honours ``ALLURE_NO_ANALYTICS``, this one does not); the browser test checks
    that the page makes no request at all.
    """
    return ANALYTICS.sub("", html)
