"""The timeline plot: PNG and SVG with the fault window and path change labelled."""

from __future__ import annotations

from harness.report.timeline import plot_timeline

MS = 1_000_000


def test_timeline_shades_faults_and_marks_path_changes(scenario, tmp_path):
    h = scenario.history
    for i in range(200):
        t = i * 10 * MS
        if 800 * MS <= t < 1100 * MS:
            continue
        oid = h.invoke(0, "write", 0, 8, writer=0, seq=i, time_ns=t)
        h.complete(oid, "ok", invoke_ns=t, time_ns=t + 3 * MS,
                   path="p0" if t < 800 * MS else "p1")
    oid = h.invoke(1, "write", 8, 8, writer=1, seq=0, time_ns=790 * MS)
    h.complete(oid, "info", invoke_ns=790 * MS, time_ns=1090 * MS, error="timeout")
    h.fault_start("cut sync link", time_ns=800 * MS)
    h.path_event("p0", "failed", time_ns=805 * MS)
    h.fault_stop("cut sync link", time_ns=1500 * MS)
    h.replica_state("node2", "synchronized", time_ns=1800 * MS)
    files = plot_timeline(scenario.load(), tmp_path / "timeline")
    png, svg = files
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = svg.read_text()
    assert "cut sync link" in text and "p0: failed" in text
    assert "node2: synchronized" in text
    assert "ok via p0" in text and "ok via p1" in text and "info" in text


def test_empty_history_still_plots(scenario, tmp_path):
    files = plot_timeline(scenario.load(), tmp_path / "empty.png")
    assert [f.name for f in files] == ["empty.png", "empty.svg"]
    assert all(f.stat().st_size > 0 for f in files)
