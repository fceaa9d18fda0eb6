"""The SCSI logical unit of one HA device replica.

An ``HaLogicalUnit`` is the reference target's ``LogicalUnit`` served from an
``HaDevice`` instead of a plain image, with two additions:

- **Persistent reservations are one state for the whole device.** PR OUT and
  RESERVE/RELEASE(6) run on the sequencer: a command arriving at the partner is
  forwarded (PR_REQ) with its I_T nexus; the sequencer runs the state machine,
  ships the new state, the unit attentions it established and the registrations
  whose tasks PREEMPT AND ABORT aborted to the partner in sequence (an ORDER of
  kind PR), and answers. Every replica therefore enforces the same
  registrations and reservation, and a PREEMPT through node B removes a key
  registered through node A everywhere.
- **A LOGICAL UNIT RESET resets the device**, not one replica: the other
  replica's nexuses get the unit attention before the reset is answered.
- **ALUA follows the replica states.** This node's target port group is
  active/optimized while Synchronized, transitioning while Synchronizing and
  unavailable while Not synchronized; the partner's group is shown the same way
  from what this node knows, so REPORT TARGET PORT GROUPS through either node
  describes the whole device and MPIO moves I/O away from a replica that must
  not serve.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from harness.scsi import cdb as c
from harness.scsi.alua import AccessState
from harness.scsi.sense import AdditionalSense, SenseData
from harness.scsi.status import ScsiStatus
from harness.target.alua import AluaGroups, TargetPortGroup
from harness.target.defects import Defect
from harness.target.device import LogicalUnit, ScsiTask, TaskResult
from harness.target.ha.mirror import HaDevice, ReplicaNotServing
from harness.target.ha.protocol import MessageKind
from harness.target.ha.replica import ReplicaState
from harness.target.identity import LuIdentity
from harness.target.nexus import ItNexus
from harness.target.reservations import (
    Access,
    PersistentReservations,
    PrOutcome,
    PrState,
    Registration,
)

ACCESS_FOR = {
    ReplicaState.SYNCHRONIZED: AccessState.ACTIVE_OPTIMIZED,
    ReplicaState.SYNCHRONIZING: AccessState.TRANSITIONING,
    ReplicaState.NOT_SYNCHRONIZED: AccessState.UNAVAILABLE,
}


def relative_port(group: int, tpgt: int) -> int:
    """Relative target port id of a node's portal group: unique across the replicas."""
    return (group << 4) | (tpgt & 0xF)


def nexus_to_json(n: ItNexus) -> dict[str, Any]:
    return {"initiator_port": n.initiator_port, "target_port": n.target_port,
            "relative_target_port_id": n.relative_target_port_id,
            "target_port_group": n.target_port_group}


def nexus_from_json(raw: dict[str, Any]) -> ItNexus:
    return ItNexus(str(raw["initiator_port"]), str(raw["target_port"]),
                   int(raw["relative_target_port_id"]), int(raw["target_port_group"]))


def _registration(raw: dict[str, Any]) -> Registration:
    return Registration(int(raw["key"]), str(raw["initiator_port"]), raw["target_port"],
                        int(raw["relative_target_port"]))


class UnenforcedReservations(PersistentReservations):
    """Defect ``reservations-not-enforced``: kept, replicated and reported, never enforced."""

    def conflicts(self, nexus: ItNexus, access: Access) -> bool:
        return False


class HaLogicalUnit(LogicalUnit):
    def __init__(self, ha: HaDevice, identity: LuIdentity, *, group: int, partner_group: int,
                 **kwargs: Any) -> None:
        if Defect.RESERVATIONS_NOT_ENFORCED in ha.config.defects:
            given = kwargs.get("reservations")
            kwargs["reservations"] = UnenforcedReservations(
                aptpl_file=given.aptpl_file if given is not None else None)
        alua = AluaGroups({group: TargetPortGroup(group, preferred=ha.config.priority == 1),
                           partner_group: TargetPortGroup(
                               partner_group, relative_ports={relative_port(partner_group, 1)})},
                          explicit=False, auto_groups=False)
        super().__init__(ha, identity, alua=alua, **kwargs)
        self.ha = ha
        self.group, self.partner_group = group, partner_group
        self._outcomes: list[tuple[ItNexus, PrOutcome]] = []
        self._mapped: dict[tuple[str, str], ItNexus] = {}
        ha.pr_handler = self._serve_forwarded
        ha.pr_apply = self._apply_shipped
        if Defect.STALE_RESERVATIONS not in ha.config.defects:
            ha.pr_snapshot = lambda: {"state": self.reservations.snapshot().to_json()}
        ha.on_state_change = self.follow_replica_states
        self.follow_replica_states()

    # -- ALUA --------------------------------------------------------------------------

    async def execute(self, task: ScsiTask) -> TaskResult:
        """Every port of this node belongs to this node's target port group."""
        nexus = task.nexus
        if nexus.target_port_group != self.group:
            mapped = self._mapped.get(nexus.key)
            if mapped is None or mapped.relative_target_port_id != relative_port(
                    self.group, nexus.relative_target_port_id):
                mapped = self._mapped[nexus.key] = replace(
                    nexus, target_port_group=self.group,
                    relative_target_port_id=relative_port(self.group,
                                                          nexus.relative_target_port_id))
            task = replace(task, nexus=mapped)
        return await super().execute(task)

    def follow_replica_states(self) -> None:
        own = self.ha.state
        if Defect.READS_FROM_UNSYNCHRONIZED in self.ha.config.defects:
            own = ReplicaState.SYNCHRONIZED  # defect: its port group still looks active
        self.set_access_state(self.group, ACCESS_FOR[own])
        partner = self.ha.partner_state or ReplicaState.NOT_SYNCHRONIZED
        self.set_access_state(self.partner_group, ACCESS_FOR[partner])

    # -- resets -------------------------------------------------------------------------

    async def reset_device(self, requester: ItNexus | None = None) -> None:
        """LOGICAL UNIT RESET of the whole device: every replica's nexuses get the UA.

        The replica that took the reset tells the other one (in sequence when it
        is the sequencer) and returns once it has been told, so an initiator that
        asks any path right after the TMF response sees the unit attention.
        """
        LogicalUnit.reset(self, requester)
        body: dict[str, Any] = {"reset": True}
        try:
            if self.ha.is_sequencer:
                body["state"] = self.reservations.snapshot().to_json()
                await self.ha.replicate(body)
            else:
                await self.ha.request(MessageKind.PR_REQ, body)
        except ReplicaNotServing:
            pass  # the partner is away: it has no nexus to tell

    # -- reservations -------------------------------------------------------------------

    def _finish_pr(self, task: ScsiTask, outcome: PrOutcome) -> TaskResult:
        self._outcomes.append((task.nexus, outcome))
        return super()._finish_pr(task, outcome)

    async def _pr_out(self, task: ScsiTask, cmd: c.PersistentReserveOut) -> TaskResult:
        return await self._sequenced(task, lambda: super(HaLogicalUnit, self)._pr_out(task, cmd))

    async def _reserve6(self, task: ScsiTask, cmd: c.Reserve6) -> TaskResult:
        return await self._sequenced(task,
                                     lambda: super(HaLogicalUnit, self)._reserve6(task, cmd))

    async def _release6(self, task: ScsiTask, cmd: c.Release6) -> TaskResult:
        return await self._sequenced(task,
                                     lambda: super(HaLogicalUnit, self)._release6(task, cmd))

    async def _sequenced(self, task: ScsiTask,
                         run_here: Callable[[], Awaitable[TaskResult]]) -> TaskResult:
        if not self.ha.is_sequencer:
            return await self._forward(task)
        result = await run_here()
        await self._ship(task.nexus)
        return result

    async def _ship(self, requester: ItNexus) -> None:
        """Replicate what the last PR command changed, in sequence with the writes."""
        changes = [o for _, o in self._outcomes if o.changed or o.attentions or o.aborted]
        self._outcomes.clear()
        if not changes or Defect.STALE_RESERVATIONS in self.ha.config.defects:
            return
        await self.ha.replicate({
            "state": self.reservations.snapshot().to_json(),
            "exclude": nexus_to_json(requester),
            "attentions": [[reg.to_json(), code.asc, code.ascq, code.name]
                           for o in changes for reg, code in o.attentions],
            "aborted": [reg.to_json() for o in changes for reg in o.aborted],
        })

    async def _forward(self, task: ScsiTask) -> TaskResult:
        body = {"nexus": nexus_to_json(task.nexus), "lun": task.lun, "cdb": task.cdb.hex(),
                "data": bytes(task.data_out).hex()}
        answer = (await self.ha.request(MessageKind.PR_REQ, body)).json()
        if "refused" in answer:
            raise ReplicaNotServing(f"HA device {self.ha.config.alias}: the sequencer refused "
                                    f"a PR command ({answer['refused']})", transitioning=True)
        sense = answer.get("sense")
        return self._result(ScsiStatus(answer["status"]),
                            sense=None if not sense else SenseData.decode(bytes.fromhex(sense)))

    async def _serve_forwarded(self, body: dict[str, Any]) -> dict[str, Any]:
        """Run a PR command or a reset forwarded by the partner (sequencer side)."""
        if body.get("reset"):
            LogicalUnit.reset(self, None)
            await self.ha.replicate({"state": self.reservations.snapshot().to_json()})
            return {"status": 0, "sense": ""}
        task = ScsiTask(nexus_from_json(body["nexus"]), int(body["lun"]),
                        bytes.fromhex(body["cdb"]), bytes.fromhex(body["data"]))
        handler = {c.PersistentReserveOut: super()._pr_out, c.Reserve6: super()._reserve6,
                   c.Release6: super()._release6}
        cmd = c.parse_cdb(task.cdb)
        run = handler.get(type(cmd))
        if run is None:
            return {"refused": f"not a reservation command: {type(cmd).__name__}"}
        result: TaskResult = await run(task, cmd)  # type: ignore[operator]
        await self._ship(task.nexus)
        return {"status": int(result.status),
                "sense": result.sense.encode().hex() if result.sense is not None else ""}

    def _apply_shipped(self, body: dict[str, Any]) -> None:
        """Adopt the sequencer's reservation state, and its reset (partner side)."""
        if body.get("reset"):
            LogicalUnit.reset(self, None)
        self.reservations.apply(PrState.from_json(body["state"]))
        exclude = nexus_from_json(body["exclude"]) if body.get("exclude") else None
        for reg_raw, asc, ascq, name in body.get("attentions", ()):
            reg = _registration(reg_raw)
            self.post_attention(AdditionalSense(int(asc), int(ascq), str(name)), exclude=exclude,
                                to=[n for n in self.nexuses if reg.covers(n)])
        aborted = [_registration(r) for r in body.get("aborted", ())]
        if aborted and self.abort_tasks is not None:
            self.abort_tasks([n for n in self.nexuses
                              if any(r.covers(n) for r in aborted)])

