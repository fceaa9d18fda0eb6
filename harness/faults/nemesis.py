"""The nemesis: runs a schedule of faults against a site and records each in the history.

A ``Schedule`` is pure data: steps ``(at_s, duration_s, FaultSpec)``, where a
``FaultSpec`` names an action (``cut``, ``blackhole``, ``kill``, ``crash``...), a
target selector and parameters. ``Schedule.scripted`` takes steps as written
(they may overlap); ``Schedule.from_json`` reads a saved one back. Seeded
schedules are drawn by the chaos layer's one generator
(``harness.chaos.schedule.draw_schedule``).

``Nemesis.run`` walks the schedule's start and stop events in time order: at a
start it records ``fault_start`` in the history, then injects; at a stop it heals,
then records ``fault_stop`` (with ``applied_ns``, when the injection returned, and
``healing_ns``, when the heal began: on a real host both are seconds away from
the start and stop records). Whatever happens (an exception, ``stop()``, a
signal), every fault it injected is healed before ``run`` returns. The history
is anything with ``fault_start(name, *, time_ns, **attrs)`` and
``fault_stop(name, *, time_ns, **attrs)``, as ``harness.workload.history.History``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.faults.fault import Fault, FaultError, HealError


class FaultRecorder(Protocol):
    def fault_start(self, name: str, *, time_ns: int | None = None, **attrs: Any) -> Any: ...

    def fault_stop(self, name: str, *, time_ns: int | None = None, **attrs: Any) -> Any: ...


@dataclass(frozen=True)
class FaultSpec:
    """What to break: an action, a target selector, parameters (JSON values)."""

    action: str
    target: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, action: str, target: str, **params: Any) -> FaultSpec:
        return cls(action, target, tuple(sorted(params.items())))

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "target": self.target, "params": self.kwargs}

    def __str__(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.params)
        return f"{self.action} {self.target}{extra}"


@dataclass(frozen=True)
class Step:
    at_s: float
    duration_s: float
    spec: FaultSpec

    def to_json(self) -> dict[str, Any]:
        return {
            "at_s": round(self.at_s, 6),
            "duration_s": round(self.duration_s, 6),
            **self.spec.to_json(),
        }


@dataclass(frozen=True)
class Schedule:
    steps: tuple[Step, ...]
    seed: int | None = None

    @classmethod
    def scripted(cls, steps: Sequence[Step | tuple[float, float, FaultSpec]]) -> Schedule:
        out = tuple(s if isinstance(s, Step) else Step(*s) for s in steps)
        for s in out:
            if s.at_s < 0 or s.duration_s < 0:
                raise FaultError(f"schedule step {s.spec} has a negative time; use seconds >= 0")
        return cls(tuple(sorted(out, key=lambda s: s.at_s)))

    @property
    def duration_s(self) -> float:
        return max((s.at_s + s.duration_s for s in self.steps), default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "steps": [s.to_json() for s in self.steps]}

    @classmethod
    def from_json(cls, data: Any) -> Schedule:
        """The schedule ``to_json`` wrote; ``FaultError`` (one line) if it is not one."""
        try:
            steps = [
                Step(float(s["at_s"]), float(s["duration_s"]), FaultSpec.of(
                    str(s["action"]), str(s["target"]), **dict(s.get("params") or {})))
                for s in data["steps"]
            ]
            seed = data.get("seed")
            seed = None if seed is None else int(seed)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FaultError(
                f"not a fault schedule ({type(exc).__name__}: {exc}); expected "
                '{"seed": N, "steps": [{"at_s", "duration_s", "action", "target", "params"}]}'
            ) from None
        return cls(cls.scripted(steps).steps, seed)


@dataclass
class Nemesis:
    """Runs a schedule: ``build`` turns a spec into a fault, ``history`` records it."""

    schedule: Schedule
    build: Callable[[FaultSpec], Fault]
    history: FaultRecorder | None = None
    clock_ns: Callable[[], int] = time.monotonic_ns
    # called after each successful inject (name, step, fault): evidence that it took effect
    on_injected: Callable[[str, Step, Fault], None] | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _active: dict[int, tuple[str, Fault]] = field(default_factory=dict, repr=False)
    _applied: dict[int, int] = field(default_factory=dict, repr=False)

    def stop(self) -> None:
        """End the run early (from another thread); active faults are healed."""
        self._stop.set()

    def _events(self) -> list[tuple[float, int, int]]:
        # (time, 0 = stop before 1 = start at the same instant, step index)
        events = []
        for i, s in enumerate(self.schedule.steps):
            events.append((s.at_s, 1, i))
            events.append((s.at_s + s.duration_s, 0, i))
        return sorted(events)

    def run(self) -> list[str]:
        """Play the schedule; return the names of the faults injected, in order."""
        injected: list[str] = []
        start_ns = self.clock_ns()
        try:
            for at_s, is_start, i in self._events():
                wait_s = at_s - (self.clock_ns() - start_ns) / 1e9
                if wait_s > 0 and self._stop.wait(wait_s):
                    break
                if self._stop.is_set():
                    break
                if is_start:
                    injected.append(self._start(i))
                else:
                    self._finish(i)
        finally:
            failures = []
            for i in sorted(self._active, reverse=True):
                try:
                    self._finish(i)
                except HealError as exc:
                    failures.append(exc)
            if failures:
                raise failures[0]
        return injected

    async def run_async(self) -> list[str]:
        """``run`` on a worker thread, for an asyncio workload running beside it.

        Cancelling the awaiting task stops the schedule; every injected fault is still
        healed before this returns or raises.
        """
        import asyncio

        try:
            return await asyncio.shield(asyncio.to_thread(self.run))
        except asyncio.CancelledError:
            self.stop()
            raise

    def _start(self, i: int) -> str:
        step = self.schedule.steps[i]
        fault = self.build(step.spec)
        name = f"{step.spec.action} {step.spec.target} [{i}]"
        if self.history is not None:
            self.history.fault_start(
                name,
                time_ns=self.clock_ns(),
                action=step.spec.action,
                target=step.spec.target,
                params=step.spec.kwargs,
                fault_id=fault.id,
            )
        self._active[i] = (name, fault)
        fault.inject()
        # when it took effect: on a real host that is seconds after the start record
        self._applied[i] = self.clock_ns()
        if self.on_injected is not None:
            self.on_injected(name, step, fault)
        return name

    def _finish(self, i: int) -> None:
        entry = self._active.pop(i, None)
        if entry is None:
            return
        name, fault = entry
        timing = {"applied_ns": self._applied.pop(i, None), "healing_ns": self.clock_ns()}
        try:
            fault.heal()
        finally:
            if self.history is not None:
                self.history.fault_stop(name, time_ns=self.clock_ns(), fault_id=fault.id,
                                        **{k: v for k, v in timing.items() if v is not None})
