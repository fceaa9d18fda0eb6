"""End to end on a site made of real parts in namespaces, driven through SSH only.

1. The site (tests/support/namespace_site.py): two storage hosts running the reference
   target as their storage service with one HA device mirrored between them, a
   cluster node with a loop disk for that test device, an OpenSSH server on every
   host; the harness gets a real-site inventory (no [lab]) and reaches each host
   only through its sshd.
2. Every lab shortcut is made to fail (a test asserts none is used): the lab's
   state, namespaces, socket factories and replica API, and any iSCSI login of
   the harness's initiator that is not carried by a cluster node's sshd.
3. Over SSH: `splitbrain validate --inventory` and `splitbrain chaos --profile smoke
   --inventory` scenarios (in-process, so the shortcuts stay forbidden); and, by hand,
   replica states (both Synchronized), the agent's safety check, a
   clock offset, then the stamped workload on the node's disk while the sync
   link between the storage hosts is black-holed; the replicas leave
   Synchronized; the fault is healed; they resynchronize; the history (agent
   records on the controller's clock, plus the fault) passes the integrity
   checker reading the disk back through the agent; the hosts' logs are
   collected, redacted; the fault journal is empty.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from fixtures.sut import SystemUnderTest
from harness.chaos.scenarios import by_name
from harness.checks.integrity import check_devices
from harness.checks.results import ResultsDir
from harness.faults.fault import live_faults
from harness.lab.inventory import load
from harness.remote import evidence
from harness.remote.agent import AgentRun
from harness.remote.replicas import SYNCHRONIZED
from harness.workload.history import load_history
from tests.support.namespace_site import namespace_site

pytestmark = [pytest.mark.needs_root, pytest.mark.slow]


class LabShortcut(AssertionError):
    pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    """One site for the module: every test leaves it healed and Synchronized."""
    with namespace_site(tmp_path_factory.mktemp("namespace") / "site") as built:
        yield built


@pytest.fixture
def no_lab_shortcuts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way around SSH raises (and is recorded) while the site is driven."""
    used: list[str] = []

    def forbid(owner: object, name: str) -> None:
        def shortcut(*args: object, **kwargs: object) -> None:
            used.append(f"{getattr(owner, '__name__', owner)}.{name}")
            raise LabShortcut(f"lab shortcut {name} used on a real site")

        monkeypatch.setattr(owner, name, shortcut)

    from harness.initiator.session import Session
    from harness.lab.loopback import LoopbackLab
    from harness.lab.netns_lab import NetnsLab
    from harness.lab.state import LabState

    for cls in (NetnsLab, LoopbackLab):
        for name in ("ha_states", "sockets", "record", "namespace", "wait_synchronized",
                     "status"):
            if hasattr(cls, name):
                forbid(cls, name)
    for name in ("load", "node_dir"):
        forbid(LabState, name)
    # the harness's own initiator may log in only from a cluster node, through its sshd
    from harness.remote.tunnel import SshTunnels

    login = Session.login

    async def tunnelled_login(self: Session, *args: object, **kwargs: object) -> object:
        if not isinstance(self.sock_factory, SshTunnels):
            used.append(f"Session.login to {self.host}:{self.port} from the controller")
            raise LabShortcut("an iSCSI login from the controller's own network")
        return await login(self, *args, **kwargs)

    monkeypatch.setattr(Session, "login", tunnelled_login)
    return used


def test_site_is_validated_and_broken_through_ssh_only(site, no_lab_shortcuts, tmp_path):
    inventory = load(site.inventory)
    assert inventory.lab is None
    sut = SystemUnderTest(inventory, None)

    # replica states over SSH (the reference target's API read on each storage host)
    states = sut.replicas.states()
    assert {(s.device, s.host, s.state) for s in states} == {
        (d, h, SYNCHRONIZED) for d in ("HA1", "HA2") for h in ("Store1", "Store2")}
    sut.require_synchronized()

    # the agent on the node's own disk: safe to write, and a clock relation
    agent = sut.agent("Node1")
    with agent.driver:
        use = agent.refuse_if_in_use()
        clock = agent.clock()
        run = AgentRun("Node1", clock)
        faults = sut.faults
        fault = faults.pair_blackhole("Store1~Store2")  # the sync link
        started = time.time()

        async def drive() -> None:
            work = asyncio.create_task(asyncio.to_thread(
                agent.run, generation=0x5EED, seed=3, writers=2, duration_s=15.0))
            await asyncio.sleep(3.0)
            with run.fault(fault.name, kind=fault.kind):
                fault.inject()
                try:
                    lost = await asyncio.to_thread(
                        sut.replicas.states)
                    assert any(s.state != SYNCHRONIZED for s in lost) or any(
                        s.partner_connected is False for s in lost), lost
                finally:
                    fault.heal()
            run.records = await work

        asyncio.run(drive())
        sut.wait_synchronized(deadline_s=120)
        history = load_history(run.write(tmp_path / "history.jsonl"))
        assert history.writes and {o.outcome for o in history.writes} == {"ok"}
        window = history.faults[0]
        # the agent's writes and the controller's fault share one timeline: writes ran
        # inside the fault window, and after it
        assert any(window.start_ns <= o.invoke_ns <= window.stop_ns for o in history.writes)
        assert history.writes[-1].invoke_ns > window.stop_ns
        verdict = asyncio.run(check_devices(history, {"Node1": agent.block_device(use)}))
        assert verdict.valid, verdict.problems[:3]

    # evidence from every host, redacted; nothing left broken
    results = ResultsDir(tmp_path / "results")
    logs = evidence.collect(inventory, started - 5, opener=lambda inv, h: __import__(
        "harness.remote", fromlist=["open_host"]).open_host(inv.host(h)))
    assert {entry.host for entry in logs} == {"Store1", "Store2", "Node1"}
    assert all(entry.name == "journal" for entry in logs), [e.text[:200] for e in logs]
    evidence.attach(results, logs)
    assert faults.journal.open_faults() == [] and live_faults() == []
    assert no_lab_shortcuts == []


def test_validate_passes_through_ssh_only(site, no_lab_shortcuts, tmp_path, capsys):
    """`splitbrain validate --inventory` on the site: every check reaches the hosts over
    SSH (storage checks log in from the cluster node through its sshd). The hosts run no
    systemd, so Validate Required Services looks for the node's services by process: the
    inventory names sshd (its iSCSI stack is its sshd, not open-iscsi + dm-multipath)."""
    from harness.cli import main

    code = main(["validate", "--inventory", str(site.inventory), "--results",
                 str(tmp_path / "validation")])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "Failed" not in out.replace("0 failed", "")
    logs = sorted(p.name for p in (tmp_path / "validation" / "attachments").iterdir())
    assert [n for n in logs if n.startswith("logs-")] == [
        "logs-Node1-journal.txt", "logs-Store1-journal.txt", "logs-Store2-journal.txt"]
    assert no_lab_shortcuts == []


#: fault kinds only the lab's proxies, disks and nodes inject: Not Applicable on a real site
LAB_ONLY = ("flap", "oneway", "delay", "disk-", "power-loss")
#: what the process and path faults' own verification on the host says (their evidence)
PROOFS = {"primary-freeze": "(SIGSTOP), sockets open", "primary-kill": "is gone: pids",
          "path-flapping": "connections were reset", "sync-reset": "link eth2 is down",
          "sync-blackhole": "dropped by the fault's rules"}


@pytest.mark.timeout(1500)
def test_chaos_smoke_profile_passes_through_ssh_only(site, no_lab_shortcuts, tmp_path):
    """`splitbrain chaos --profile smoke --inventory` on the site, through SSH alone: every
    catalogue scenario once, in-process (so the shortcuts stay forbidden). Those whose
    faults the site's drivers inject must pass: the sync link reset (adapter down) or
    black-holed, the primary's target killed, frozen (SIGSTOP) or restarted by its
    supervisor (as systemd would), one path, a flapping path, every path of one or both
    storage hosts reset, sync and heartbeat partitioned together, and the double failures
    (a kill during a resync or mid-burst, both nodes killed, heals in the other order).
    Each fault is proved on the host or by the history, healed, nothing acknowledged is
    lost, the replicas end identical and Synchronized, timing within budget; a split
    brain the heartbeat strategy allows is a Warning that the device kept apart (the
    harness marks the primary over SSH, as the administrator would). Lab-only fault kinds
    and the node-majority scenarios (the site has no witness) are Not Applicable, named,
    before anything is touched."""
    from harness.chaos.scenarios import SCENARIOS
    from harness.checks.results import ResultsDir, ResultWord
    from harness.cli import main

    out = tmp_path / "chaos"
    code = main(["chaos", "--profile", "smoke", "--inventory", str(site.inventory),
                 "--seed", "1", "--output", str(out)])
    results = {r.name: r for r in ResultsDir(out).read_all()}
    assert sorted(results) == sorted(s.name for s in SCENARIOS)
    ran = {}
    for scenario in SCENARIOS:
        r = results[scenario.name]
        lab_only = [f.action for f in scenario.faults if f.action.startswith(LAB_ONLY)]
        if lab_only:
            assert r.result == ResultWord.NOT_APPLICABLE and lab_only[0] in r.reason, r.reason
        elif scenario.strategy == "node-majority":
            assert r.result == ResultWord.NOT_APPLICABLE and "node-majority" in r.reason, \
                r.reason
        else:
            ran[scenario.name] = r
    bad = {n: (r.result, r.reason) for n, r in ran.items() if r.result != ResultWord.SUCCESS
           and not (r.result == ResultWord.WARNING and r.reason.startswith("split brain")
                    and by_name(n).split_brain == "allowed")}
    assert bad == {}
    assert len(ran) >= 16
    for name, text in PROOFS.items():  # faults proved on the host as they were applied
        assert any(text in e.text for e in ran[name].evidence
                   if e.title.startswith("took effect")), (name, ran[name].evidence)
    assert code == 0 and live_faults() == []
    assert any(p.name.startswith("logs-Store1") for p in (out / "attachments").iterdir())
    assert no_lab_shortcuts == []
