"""``splitbrain probe iscsi://[user:secret@]host[:port][/iqn[/lun]]``: what a portal offers.

Runs SendTargets discovery at the portal, logs in to the named target (or to
every discovered target), and prints for each LUN (or the one named): vendor,
product and revision, capacity, the VPD 0x80 serial and 0x83 designators, the
persistent-reservation capabilities, the ALUA target port groups, and the
session's NOP-Out round trip. ``--json`` prints the same as one JSON document;
``--pcap FILE`` records every PDU of every session. CHAP comes from the URL,
from ``--chap-user``/``--chap-secret`` or from ``SPLITBRAIN_CHAP_USER`` /
``SPLITBRAIN_CHAP_SECRET`` (mutual: ``--mutual-user``/``--mutual-secret`` or
``SPLITBRAIN_CHAP_MUTUAL_USER``/``_SECRET``). A refused connection, a rejected
login or an unknown target prints one line and exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from harness.errors import SplitbrainError
from harness.iscsi.names import IscsiUrl, parse_iscsi_url

HELP = "log in to an iSCSI portal and print its targets, LUNs, identities and PR/ALUA support"

NOP_SAMPLES = 3


class ProbeError(SplitbrainError):
    """The probe's input or the probed target's answers make the probe impossible."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="iscsi://[user:secret@]host[:port][/iqn[/lun]]")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--pcap", metavar="FILE", help="record every PDU to this pcap file")
    parser.add_argument("--initiator-name", default=None,
                        help="initiator IQN to log in as (default: the harness's own)")
    parser.add_argument("--chap-user", default=os.environ.get("SPLITBRAIN_CHAP_USER"),
                        help="CHAP user (env SPLITBRAIN_CHAP_USER)")
    parser.add_argument("--chap-secret", default=os.environ.get("SPLITBRAIN_CHAP_SECRET"),
                        help="CHAP secret (env SPLITBRAIN_CHAP_SECRET; safer than this flag)")
    parser.add_argument("--mutual-user", default=os.environ.get("SPLITBRAIN_CHAP_MUTUAL_USER"),
                        help="target's CHAP user for mutual CHAP (env SPLITBRAIN_CHAP_MUTUAL_USER)")
    parser.add_argument("--mutual-secret",
                        default=os.environ.get("SPLITBRAIN_CHAP_MUTUAL_SECRET"),
                        help="target's CHAP secret for mutual CHAP "
                             "(env SPLITBRAIN_CHAP_MUTUAL_SECRET)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds allowed for each connect, login and command (default 10)")


def run(args: argparse.Namespace) -> int:
    url = parse_iscsi_url(args.url, partial=True)
    report = asyncio.run(probe(url, args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 0


def _chap(url: IscsiUrl, args: argparse.Namespace) -> Any:
    from harness.initiator.login import ChapSecrets

    user = url.user or args.chap_user
    secret = url.secret or args.chap_secret
    if (user is None) != (secret is None):
        raise ProbeError("CHAP needs both a user and a secret (URL user:secret@, --chap-user/"
                         "--chap-secret or SPLITBRAIN_CHAP_USER/SECRET)")
    if (args.mutual_user is None) != (args.mutual_secret is None):
        raise ProbeError("mutual CHAP needs both --mutual-user and --mutual-secret")
    if user is None:
        if args.mutual_user is not None:
            raise ProbeError("mutual CHAP needs the initiator's CHAP user and secret too")
        return None
    return ChapSecrets(user, secret, args.mutual_user, args.mutual_secret)


async def probe(url: IscsiUrl, args: argparse.Namespace) -> dict[str, Any]:
    from harness.initiator.recorder import PcapRecorder
    from harness.initiator.session import DEFAULT_INITIATOR, Session, SessionTimeouts

    t = args.timeout
    timeouts = SessionTimeouts(connect=t, login=t, command=t, nop=t, task_management=t,
                               logout=t)
    chap = _chap(url, args)
    initiator = args.initiator_name or DEFAULT_INITIATOR
    recorder = PcapRecorder(args.pcap) if args.pcap else None
    portal = f"{url.host}:{url.port}"
    try:
        discovered = await _discover(url, initiator, chap, timeouts, recorder)
        report: dict[str, Any] = {
            "portal": portal,
            "discovered": [{"name": d.name, "portals": [str(p) for p in d.portals]}
                           for d in discovered],
            "targets": [],
        }
        names = [url.target] if url.target else [d.name for d in discovered]
        if url.target and url.target not in {d.name for d in discovered}:
            raise ProbeError(f"target {url.target} is not offered at {portal} (discovery "
                             f"lists {', '.join(d.name for d in discovered) or 'no targets'}); "
                             "check the target name")
        for name in names:
            session = Session(url.host, url.port, name, initiator_name=initiator, chap=chap,
                              timeouts=timeouts, recorder=recorder)
            async with session:
                report["targets"].append(await _probe_target(session, url.lun))
        return report
    finally:
        if recorder is not None:
            recorder.close()


async def _discover(url: IscsiUrl, initiator: str, chap: Any, timeouts: Any,
                    recorder: Any) -> Any:
    """SendTargets; discovery sessions often need no CHAP even when the target does
    (tgtd, open-iscsi keep separate discovery credentials), so try without first."""
    from harness.initiator.discovery import send_targets
    from harness.initiator.errors import LoginRejected

    try:
        return await send_targets(url.host, url.port, initiator_name=initiator,
                                  timeouts=timeouts, recorder=recorder)
    except LoginRejected as exc:
        if chap is None or exc.status_class != 2:
            raise
    return await send_targets(url.host, url.port, initiator_name=initiator, chap=chap,
                              timeouts=timeouts, recorder=recorder)


async def _probe_target(session: Any, only_lun: int | None) -> dict[str, Any]:
    rtts = [await session.ping() for _ in range(NOP_SAMPLES)]
    luns = await session.report_luns()
    if only_lun is not None and only_lun not in luns:
        raise ProbeError(f"LUN {only_lun} does not exist on {session.where} (it reports LUNs "
                         f"{', '.join(map(str, luns)) or 'none'}); check the LUN number")
    return {
        "name": session.target,
        "tsih": session.tsih,
        "nop_round_trip_us": {"min": min(rtts) / 1000, "max": max(rtts) / 1000},
        "parameters": session.login_result.agreed,
        "luns": [await _probe_lun(session, lun)
                 for lun in ([only_lun] if only_lun is not None else luns)],
    }


async def _probe_lun(session: Any, lun: int) -> dict[str, Any]:
    from harness.initiator.errors import CheckCondition, ScsiStatusError
    from harness.scsi.reservations import PrInAction
    from harness.scsi.vpd import DesignatorType, VpdPage

    refused = (CheckCondition, ScsiStatusError)
    std = await session.inquiry(lun)
    out: dict[str, Any] = {
        "lun": lun, "vendor": std.vendor, "product": std.product, "revision": std.revision,
        "device_type": std.device_type, "tpgs": std.tpgs,
    }
    if std.device_type != 0:
        out["note"] = "not a direct-access block device (no capacity, PR or ALUA probed)"
        return out
    capacity = await session.read_capacity(lun)
    out["capacity"] = {"block_size": capacity.block_size, "blocks": capacity.num_blocks,
                       "bytes": capacity.bytes}
    try:
        out["serial"] = (await session.vpd(VpdPage.UNIT_SERIAL_NUMBER, lun)).serial
    except refused as exc:
        out["serial"] = None
        out["serial_error"] = str(exc)
    try:
        ident = await session.vpd(VpdPage.DEVICE_IDENTIFICATION, lun)
        out["designators"] = [
            {"type": _enum_name(DesignatorType, d.designator_type), "association":
             d.association, "value": d.text} for d in ident.designators]
    except refused as exc:
        out["designators"] = []
        out["designators_error"] = str(exc)
    try:
        caps = await session.persistent_reserve_in(PrInAction.REPORT_CAPABILITIES, lun)
        out["persistent_reservations"] = {
            "types": sorted(t.name for t in caps.types), "ptpl_capable": caps.ptpl_c,
            "ptpl_active": caps.ptpl_a, "specify_initiator_ports": caps.sip_c,
            "all_target_ports": caps.atp_c, "compatible_reservation_handling": caps.crh}
    except refused as exc:
        out["persistent_reservations"] = {"supported": False, "error": str(exc)}
    if std.tpgs:
        try:
            rtpg = await session.report_target_port_groups(lun)
            out["alua"] = [{"group": g.group_id, "state": g.state.name,
                            "preferred": g.preferred, "relative_ports": list(g.relative_ports)}
                           for g in rtpg.groups]
        except refused as exc:
            out["alua"] = {"supported": False, "error": str(exc)}
    else:
        out["alua"] = {"supported": False, "error": "standard INQUIRY reports TPGS 0"}
    return out


def _enum_name(enum: Any, value: int) -> str:
    try:
        return str(enum(value).name)
    except ValueError:
        return f"type {value}"


def _size(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def render(report: dict[str, Any]) -> str:
    lines = [f"portal {report['portal']}", "discovered targets:"]
    for d in report["discovered"]:
        lines.append(f"  {d['name']}  ({', '.join(d['portals'])})")
    for target in report["targets"]:
        rtt = target["nop_round_trip_us"]
        lines.append(f"target {target['name']}  (NOP round trip {rtt['min']:.0f}-"
                     f"{rtt['max']:.0f} us, TSIH {target['tsih']})")
        for lun in target["luns"]:
            lines.append(f"  LUN {lun['lun']}: {lun['vendor']} {lun['product']} "
                         f"{lun['revision']} (device type 0x{lun['device_type']:02x})")
            if "note" in lun:
                lines.append(f"    {lun['note']}")
                continue
            cap = lun["capacity"]
            lines.append(f"    capacity: {cap['blocks']} blocks x {cap['block_size']} B = "
                         f"{_size(cap['bytes'])}")
            lines.append(f"    serial (VPD 0x80): {lun['serial']!r}")
            lines.append("    designators (VPD 0x83):")
            for d in lun["designators"]:
                lines.append(f"      {d['type']}: {d['value']} (association {d['association']})")
            pr = lun["persistent_reservations"]
            if "types" in pr:
                lines.append(f"    persistent reservations: {', '.join(pr['types'])}; "
                             f"PTPL capable {pr['ptpl_capable']}")
            else:
                lines.append(f"    persistent reservations: not supported ({pr['error']})")
            alua = lun["alua"]
            if isinstance(alua, list):
                for g in alua:
                    lines.append(f"    ALUA group {g['group']}: {g['state']} ports "
                                 f"{g['relative_ports']}{' preferred' if g['preferred'] else ''}")
            else:
                lines.append(f"    ALUA: not supported ({alua['error']})")
    return "\n".join(lines)
