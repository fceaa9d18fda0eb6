"""Where a chaos run's cluster nodes write: each node's private writers own their blocks,
and every writer of every node shares the shared half.

A survivor that writes where a crashed node's writes were left on one replica rewrites
that difference away, so a private region must be private across nodes too (chaos
sequencer-dies-with-its-writer, the activity-log defect of the zoo)."""

from __future__ import annotations

from itertools import pairwise
from types import SimpleNamespace

import pytest

from harness.chaos.phases import BLOCK_SIZES, RunPhases

MIB = 1 << 20


def layout(nodes: list[str], span_bytes: int, size: int = 256 * MIB,
           shared_bytes: int = 0) -> list[tuple[int, object]]:
    settings = SimpleNamespace(seed=1, writers=4, queue_depth=2, duration_s=5.0,
                               span_bytes=span_bytes, shared_bytes=shared_bytes)
    fake = SimpleNamespace(run=SimpleNamespace(settings=settings), nodes=nodes,
                           timers=lambda: SimpleNamespace(disk_timeout_s=20.0))
    fake.span = lambda n: RunPhases.span(fake, n)
    device = SimpleNamespace(num_blocks=size // 512, block_size=512)
    return RunPhases.specs(fake, device)


def regions(specs, mode: str) -> list[tuple[int, int]]:
    """(start, end) in bytes of every writer region of the specs in ``mode``."""
    out = []
    for _, spec in specs:
        if spec.region_mode == mode:
            for w in range(spec.writers):
                offset, length = spec.writer_region(w)
                out.append((offset, offset + length))
    return out


@pytest.mark.parametrize("span", [0, 32 * MIB])
def test_no_two_private_writers_of_any_node_share_a_block(span):
    private = sorted(regions(layout(["Demo1", "Demo2"], span), "private"))
    assert len(private) == 4  # two nodes, two private writers each
    for (_, end), (start, _) in pairwise(private):
        assert end <= start
    half = (span or 256 * MIB) // 2
    assert private[-1][1] <= half  # all in the private half


def test_every_node_writes_the_same_shared_half():
    shared = set(regions(layout(["Demo1", "Demo2"], 0), "shared"))
    assert shared == {(128 * MIB, 256 * MIB)}


def test_a_span_too_small_to_split_lets_the_nodes_share_the_private_half():
    big = max(BLOCK_SIZES)
    specs = layout(["Demo1", "Demo2"], 4 * big)  # a half of two largest blocks
    private = regions(specs, "private")
    # each node's two writers own one largest block each, the same two on both nodes
    assert sorted(private) == [(0, big), (0, big), (big, 2 * big), (big, 2 * big)]


def test_one_node_writes_the_whole_span():
    (_, spec), = layout(["Demo1"], 32 * MIB)
    assert (spec.region_offset, spec.region_length) == (0, 32 * MIB)
