"""The workload over iSCSI against the bundled reference target: MPIO over both portals,
then blocks of the target's image file are damaged behind its back and read back
through every path, and the same through the command line with iscsi:// URLs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from tamper_blocks import tamper

from harness.checks.integrity import check_devices, check_image
from harness.checks.register import check_reads
from harness.checks.verdict import Verdict
from harness.iscsi.names import IscsiUrl, parse_iscsi_url
from harness.workload.generator import WorkloadSpec
from harness.workload.history import History, HistoryHeader, RecordedHistory, load_history
from harness.workload.iscsi_device import (
    IscsiDevice,
    MultipathBlockDevice,
    mirror_path_events,
    open_iscsi_device,
    open_iscsi_paths,
)
from harness.workload.writers import Workload, WorkloadResult

BS = 4096


def run(coro, seconds=180):
    return asyncio.run(asyncio.wait_for(coro, seconds))


async def run_workload(dev: IscsiDevice | MultipathBlockDevice, hist_path: Path, *, seed: int,
                       generation: int, device: str, path_events: bool = False
                       ) -> WorkloadResult:
    """4 writers x 150 ops (a fifth of them reads) of 4 or 16 KiB in the first 8 MiB of
    ``dev``, recorded in the history at ``hist_path`` (with the path events of an MPIO
    device when ``path_events``); ``dev`` is closed after."""
    try:
        header = HistoryHeader(seed=seed, generation=generation, block_size=BS,
                               logical_block_size=dev.block_size, num_blocks=dev.num_blocks,
                               device=device, initial="zero", start_ns=time.monotonic_ns(),
                               wall_clock=time.time())
        with History(hist_path, header) as history:
            unsubscribe = mirror_path_events(dev, history) if path_events else None
            spec = WorkloadSpec(seed=seed, writers=4, queue_depth=1, duration=None,
                                ops_per_writer=150, read_ratio=0.2,
                                block_sizes=(4096, 16384), region_length=8 << 20)
            result = await Workload(dev, spec, history).run()
            if unsubscribe is not None:
                unsubscribe()
    finally:
        await dev.close()
    return result


async def read_back(history: RecordedHistory, urls: list[IscsiUrl]) -> Verdict:
    """``history`` checked against what each of ``urls`` (one session each) reads."""
    paths = await open_iscsi_paths(urls)
    try:
        assert all(isinstance(d, IscsiDevice) for d in paths.values())
        return await check_devices(history, paths)
    finally:
        for d in paths.values():
            await d.close()


def test_mpio_workload_then_tampered_image_read_back_through_every_path(reference_target,
                                                                        tmp_path):
    urls = [parse_iscsi_url(reference_target.url(i)) for i in range(2)]
    hist_path = tmp_path / "h.jsonl"

    async def workload():
        dev = await open_iscsi_device(urls)
        assert isinstance(dev, MultipathBlockDevice)
        return await run_workload(dev, hist_path, seed=21, generation=0x15C5,
                                  device="reference target", path_events=True)

    result = run(workload())
    assert result.ok == result.ops == 600
    history = load_history(hist_path)
    assert {o.path for o in history.writes} == {str(u).removeprefix("iscsi://") for u in urls}
    assert check_reads(history).valid
    image = reference_target.image
    assert check_image(history, image).valid
    chosen = tamper(image, history)
    verdict = run(read_back(history, urls))
    expected = sorted((block, kind) for kind, block in chosen.items())
    for name in (str(u).removeprefix("iscsi://") for u in urls):
        got = sorted((p.offset // BS, p.kind) for p in verdict.problems if p.device == name)
        assert got == expected, name
    assert sorted((p.offset // BS, p.kind) for p in check_image(history, image).problems) == \
        expected


def test_command_line_with_iscsi_urls(reference_target, tmp_path):
    urls = [reference_target.url(0), reference_target.url(1)]
    devices = [a for u in urls for a in ("--device", u)]

    def splitbrain(*args):
        return subprocess.run([sys.executable, "-m", "harness", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=180)

    w = splitbrain("workload", *devices, "--duration", "0", "--ops", "40", "--seed", "4",
                   "--history", "h.jsonl", "--writers", "2", "--region", "0:4M")
    assert w.returncode == 0, w.stdout + w.stderr
    assert "80 ok, 0 fail, 0 info" in w.stdout
    clean = splitbrain("check", "h.jsonl", *devices)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    lines = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    last = [r for r in lines if r["type"] == "invoke" and r["f"] == "write"][-1]
    offset = last["lba"] * 512
    with open(reference_target.image, "r+b") as fh:
        fh.seek(offset)
        fh.write(bytes(BS))
    bad = splitbrain("check", "h.jsonl", *devices, "--json")
    assert bad.returncode == 1
    problems = json.loads(bad.stdout)["problems"]
    assert {(p["offset"], p["device"]) for p in problems} == {
        (offset, u.removeprefix("iscsi://")) for u in urls}


def test_single_path_workload_on_tgtd_then_tampered_image(tgtd_target, tmp_path):
    """The same proof against an independent target (Debian's tgtd), over one Session."""
    url = parse_iscsi_url(tgtd_target.url())
    hist_path = tmp_path / "h.jsonl"

    async def workload():
        dev = await open_iscsi_device([url])
        assert isinstance(dev, IscsiDevice)
        return await run_workload(dev, hist_path, seed=8, generation=0x7617D, device="tgtd")

    result = run(workload())
    assert result.ok == result.ops == 600
    history = load_history(hist_path)
    assert check_reads(history).valid
    chosen = tamper(tgtd_target.image, history)
    verdict = run(read_back(history, [url]))
    assert sorted((p.offset // BS, p.kind) for p in verdict.problems) == sorted(
        (block, kind) for kind, block in chosen.items())
