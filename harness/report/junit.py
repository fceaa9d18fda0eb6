"""JUnit XML for CI systems: one ``testsuite`` per category, one ``testcase`` per result.

Failed becomes ``<failure>``, Canceled ``<error>``, Not Applicable ``<skipped>``
(with the reason); a Warning passes with its reason in ``<system-out>``. The
evidence text goes to ``<system-out>`` too, redacted. The schema is the one
Jenkins, GitLab and GitHub test reporters read (``testsuites/testsuite/testcase``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.checks.results import ResultWord
from harness.redact import Redactor
from harness.report.records import RecordedRun


def render_junit(run: RecordedRun, redactor: Redactor) -> str:
    red = redactor.text
    root = ET.Element("testsuites", name=f"splitbrain {red(run.info.site)}")
    suites: dict[str, ET.Element] = {}
    counts: dict[str, dict[str, float]] = {}
    for rec in run.ordered():
        r = rec.result
        suite = suites.get(r.category)
        if suite is None:
            suite = suites[r.category] = ET.SubElement(root, "testsuite", name=r.category)
            counts[r.category] = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0,
                                  "time": 0.0}
        c = counts[r.category]
        seconds = max(r.finished - r.started, 0.0) if r.started and r.finished else 0.0
        c["tests"] += 1
        c["time"] += seconds
        case = ET.SubElement(suite, "testcase", classname=f"{r.kind}.{r.category}",
                             name=red(r.name), time=f"{seconds:.3f}")
        message = red(r.reason or str(r.result))
        if r.result is ResultWord.FAILED:
            c["failures"] += 1
            ET.SubElement(case, "failure", message=message, type="Failed").text = message
        elif r.result is ResultWord.CANCELED:
            c["errors"] += 1
            ET.SubElement(case, "error", message=message, type="Canceled").text = message
        elif r.result is ResultWord.NOT_APPLICABLE:
            c["skipped"] += 1
            ET.SubElement(case, "skipped", message=message)
        out = [f"{r.result}: {red(r.reason)}" if r.reason else str(r.result)]
        out += [f"--- {red(e.title)}\n{red(e.text)}" for e in r.evidence]
        out += [f"attachment missing: {p}" for p in rec.missing]
        ET.SubElement(case, "system-out").text = "\n".join(out)
    total = {"tests": 0.0, "failures": 0.0, "errors": 0.0, "skipped": 0.0, "time": 0.0}
    for name, suite in suites.items():
        for k, v in counts[name].items():
            suite.set(k, f"{v:.3f}" if k == "time" else str(int(v)))
            total[k] += v
    for k, v in total.items():
        root.set(k, f"{v:.3f}" if k == "time" else str(int(v)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
