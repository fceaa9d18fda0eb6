"""The command line: `splitbrain workload` then `splitbrain check`, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

BS = 4096


def splitbrain(*args, cwd):
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_workload_then_check_clean_then_damaged(tmp_path):
    run = splitbrain("workload", "--device", "disk.img", "--size", "4M", "--duration", "0",
                     "--ops", "150", "--seed", "5", "--history", "h.jsonl", "--writers", "2",
                     "--qd", "2", "--bs", "4k,8k", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "300 ops" in run.stdout and "300 ok, 0 fail, 0 info" in run.stdout
    assert "splitbrain check h.jsonl --device disk.img" in run.stdout

    clean = splitbrain("check", "h.jsonl", "--device", "disk.img", "--timeline", "tl",
                       cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "RESULT     ok: no problems" in clean.stdout
    assert (tmp_path / "tl.png").stat().st_size > 0 and (tmp_path / "tl.svg").exists()

    lines = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    written = next(r for r in lines if r["type"] == "invoke" and r["f"] == "write")
    offset = written["lba"] * 512
    img = tmp_path / "disk.img"
    data = bytearray(img.read_bytes())
    data[offset:offset + BS] = bytes(BS)
    img.write_bytes(bytes(data))

    text = splitbrain("check", "h.jsonl", "--device", "disk.img", cwd=tmp_path)
    assert text.returncode == 1
    assert "RESULT     FAILED" in text.stdout

    js = splitbrain("check", "h.jsonl", "--device", "disk.img", "--json", cwd=tmp_path)
    assert js.returncode == 1
    doc = json.loads(js.stdout)
    assert doc["valid"] is False
    mine = [p for p in doc["problems"] if p["offset"] == offset]
    assert mine, doc["problems"]
    p = mine[0]
    assert p["kind"] in ("lost", "stale") and p["length"] == BS and p["checker"] == "integrity"
    assert {r["type"] for r in p["records"]} >= {"invoke", "ok"}


def test_user_errors_are_one_line(tmp_path):
    missing = splitbrain("check", "nope.jsonl", cwd=tmp_path)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().count("\n") == 0 and "does not exist" in missing.stderr
    no_dev = splitbrain("workload", "--device", "absent.img", "--history", "h.jsonl",
                        cwd=tmp_path)
    assert no_dev.returncode == 1 and "does not exist" in no_dev.stderr
    assert "Traceback" not in no_dev.stderr
    bad = splitbrain("workload", "--device", "x.img", "--size", "1M", "--bs", "3000",
                     "--history", "h.jsonl", cwd=tmp_path)
    assert bad.returncode == 1 and "multiple of 512" in bad.stderr
    assert not (tmp_path / "h.jsonl").exists()  # refused before anything was recorded
    assert not (tmp_path / "x.img").exists()
    url = splitbrain("workload", "--device", "iscsi://host/iqn-only", "--history", "h.jsonl",
                     cwd=tmp_path)
    assert url.returncode == 1 and "path must be" in url.stderr
    (tmp_path / "h.jsonl").write_text(json.dumps(
        {"type": "header", "version": 1, "seed": 0, "generation": 1, "block_size": 4096,
         "logical_block_size": 512, "num_blocks": 8, "device": "x"}) + "\n")
    budget = splitbrain("check", "h.jsonl", "--budget", "failover", cwd=tmp_path)
    assert budget.returncode == 1 and "NAME=NUMBER" in budget.stderr


def test_check_compares_replicas(tmp_path):
    run = splitbrain("workload", "--device", "a.img", "--size", "2M", "--duration", "0",
                     "--ops", "60", "--seed", "9", "--history", "h.jsonl", "--writers", "2",
                     "--read-ratio", "0", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    a = (tmp_path / "a.img").read_bytes()
    (tmp_path / "b.img").write_bytes(a)
    same = splitbrain("check", "h.jsonl", "--replica", "a.img", "--replica", "b.img",
                      cwd=tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "replicas   a.img, b.img: 0 B differ: ok" in same.stdout
    lines = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    last = [r for r in lines if r["type"] == "invoke" and r["f"] == "write"][-1]
    behind = bytearray(a)
    off = last["lba"] * 512
    behind[off:off + last["count"] * 512] = bytes(last["count"] * 512)
    (tmp_path / "b.img").write_bytes(bytes(behind))
    diverged = splitbrain("check", "h.jsonl", "--replica", "a.img", "--replica", "b.img",
                          cwd=tmp_path)
    assert diverged.returncode == 1
    assert "replicas diverged" in diverged.stdout and "split brain" not in diverged.stdout
    one = splitbrain("check", "h.jsonl", "--replica", "a.img", cwd=tmp_path)
    assert one.returncode == 1 and "two or more" in one.stderr


def test_sigint_stops_the_workload_cleanly(tmp_path):
    import signal

    from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

    proc = subprocess.Popen([sys.executable, "-m", "harness", "workload", "--device", "d.img",
                             "--size", "4M", "--duration", "120", "--history", "h.jsonl",
                             "--rate", "200"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        hist = tmp_path / "h.jsonl"

        def records() -> int:
            return len(hist.read_text().splitlines()) if hist.exists() else 0

        Retrying(stop=stop_after_delay(60), wait=wait_fixed(0.1),
                 retry=retry_if_result(lambda n: n < 50))(records)  # running and recording
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "workload: " in out and "check it:" in out
    check = splitbrain("check", "h.jsonl", "--device", "d.img", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
