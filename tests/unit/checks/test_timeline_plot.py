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


def test_a_history_file_is_plotted_from_a_stream(scenario, tmp_path):
    from harness.checks.timeline_stream import timeline_data

    h = scenario.history
    for i in range(300):
        t = i * 10 * MS
        oid = h.invoke(0, "read", 0, 8, time_ns=t)
        h.complete(oid, "fail" if i % 100 == 7 else "ok", invoke_ns=t, time_ns=t + 2 * MS,
                   path=f"p{i % 2}")
    h.fault_start("cut p1", time_ns=1000 * MS)
    h.fault_stop("cut p1", time_ns=1200 * MS)
    data = timeline_data(scenario.path, bin_s=1.0, max_points=50)
    assert data.bins_ok.tolist() == [99, 99, 99] and data.bins_errors.tolist() == [1, 1, 1]
    assert data.bins_bytes.sum() == 297 * 4096
    assert (data.outcome == 2).sum() == 3  # every failed op is kept
    assert 25 <= (data.outcome == 0).sum() <= 50  # ok points thinned, spread over the run
    assert data.complete_ns.max() > 2500 * MS
    files = plot_timeline(scenario.path, tmp_path / "streamed")
    text = files[1].read_text()
    assert "cut p1" in text and "ok via p0" in text and "fail" in text
