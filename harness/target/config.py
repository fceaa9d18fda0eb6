"""The storage node's configuration: one TOML file per node process.

Model: a *node* has a name, a data directory (LU image files live there unless
a LUN names an absolute path), one or more *portals* (one per iSCSI network
address, so MPIO sees several paths; port 0 means "pick a free port and report
it"), a management listener, and *targets*. A target has an IQN, an alias, an
optional CHAP setting (one-way or mutual) and an initiator ACL; it holds
*LUNs*, each an image file of a given size with a device identity (unit serial,
NAA designator, vendor and product).

Secrets never appear in the file: a CHAP secret is written as a ``${ENV}``
reference or read from a secrets file (``secret_file``) that only its owner can
read. The management token is read from the environment variable that
``management.token_env`` names; there is no default token.

Example::

    [node]
    name = "node1"
    data_dir = "/var/lib/splitbrain/node1"

    [[portal]]
    address = "127.0.0.1"
    port = 0

    [management]
    listen = "127.0.0.1:0"
    token_env = "SPLITBRAIN_TARGET_TOKEN"

    [[target]]
    iqn = "iqn.2026-11.org.splitbrain:node1.ha1"
    alias = "HA1"
    initiators = ["iqn.1991-05.com.microsoft:hv1"]     # empty or absent: any initiator
    chap = { username = "hv", secret = "${HA1_CHAP}" }   # optional

    [[target.lun]]
    lun = 0
    image = "ha1.img"
    size = "1GiB"
    serial = "HA1-0001"

Every mistake raises ``ConfigError`` naming the file, the key path
(``target[0].lun[1].size``) and how to fix it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.target.config_reader import ConfigError
from harness.target.config_reader import ConfigReader as _Reader
from harness.target.config_reader import read_address as _address

if TYPE_CHECKING:
    from harness.target.ha.node_config import HaDeviceBinding

BLOCK_SIZE = 512
_IQN = re.compile(r"^iqn\.\d{4}-\d{2}\.[a-z0-9][a-z0-9.-]*(:[^\s]+)?$", re.IGNORECASE)
_EUI = re.compile(r"^eui\.[0-9a-f]{16}$", re.IGNORECASE)
_NAA_NAME = re.compile(r"^naa\.([0-9a-f]{16}|[0-9a-f]{32})$", re.IGNORECASE)
_NAA_ID = re.compile(r"^[0-9a-f]{16}$|^[0-9a-f]{32}$", re.IGNORECASE)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4, "P": 1000**5,
          "KI": 1024, "MI": 1024**2, "GI": 1024**3, "TI": 1024**4, "PI": 1024**5}


def is_iscsi_name(name: str) -> bool:
    """True when ``name`` is an iqn., eui. or naa. iSCSI name (RFC 7143 section 4.2.7)."""
    return bool(_IQN.match(name) or _EUI.match(name) or _NAA_NAME.match(name))


def parse_size(text: str | int) -> int:
    """Bytes in a size like ``"1GiB"``, ``"512MiB"``, ``"10G"`` or a plain integer."""
    if isinstance(text, bool):
        raise ValueError(text)
    if isinstance(text, int):
        return text
    m = _SIZE.match(text)
    if not m:
        raise ValueError(text)
    unit = (m.group(2) or "").upper().removesuffix("B")
    return int(float(m.group(1)) * _UNITS[unit])


@dataclass(frozen=True)
class Chap:
    """CHAP for one target. ``mutual_*`` set: the target also proves itself."""

    username: str
    secret: str = field(repr=False)
    mutual_username: str | None = None
    mutual_secret: str | None = field(default=None, repr=False)

    @property
    def mutual(self) -> bool:
        return self.mutual_username is not None


@dataclass(frozen=True)
class LunConfig:
    lun: int
    image: Path
    size: int
    serial: str
    naa: str
    vendor: str = "SPLITBRN"
    product: str = "REFERENCE-LU"
    block_size: int = BLOCK_SIZE


@dataclass(frozen=True)
class TargetConfig:
    iqn: str
    alias: str = ""
    initiators: tuple[str, ...] = ()
    chap: Chap | None = None
    luns: tuple[LunConfig, ...] = ()

    def admits(self, initiator_name: str) -> bool:
        """The ACL: an empty list admits every initiator; names compare case-insensitively."""
        if not self.initiators:
            return True
        return initiator_name.lower() in {i.lower() for i in self.initiators}


@dataclass(frozen=True)
class PortalConfig:
    address: str
    port: int = 3260
    tpgt: int = 1


@dataclass(frozen=True)
class ManagementConfig:
    host: str = "127.0.0.1"
    port: int = 0
    token_env: str = "SPLITBRAIN_TARGET_TOKEN"


@dataclass(frozen=True)
class SessionLimits:
    """Per-node protocol limits: what the target offers and how much it tolerates."""

    queue_depth: int = 64                 # commands the window admits (MaxCmdSN - ExpCmdSN + 1)
    max_recv_data_segment_length: int = 262144
    max_burst_length: int = 262144
    first_burst_length: int = 65536
    max_connections: int = 1024           # TCP connections across all portals
    max_pending_write_bytes: int = 128 * 1024 * 1024   # per session: writes still collecting
    login_timeout_s: float = 15.0         # a connection not in full feature phase by then: closed
    nop_in_interval_s: float = 10.0       # 0 disables the keepalive
    nop_in_timeout_s: float = 30.0        # no answer to a NOP-In by then: the connection is dead


@dataclass(frozen=True)
class NodeConfig:
    name: str
    data_dir: Path
    portals: tuple[PortalConfig, ...]
    management: ManagementConfig
    targets: tuple[TargetConfig, ...]
    limits: SessionLimits = SessionLimits()
    write_through: bool = True
    defects: tuple[str, ...] = ()
    source: str = "<config>"
    #: LUNs that are replicas of HA devices (``[[ha_device]]``, harness.target.ha)
    ha_devices: tuple[HaDeviceBinding, ...] = ()
    #: keep unsynced writes undoable so a power-loss fault can discard them (labs only;
    #: harness.target.power_loss)
    volatile_writes: bool = False

    def target(self, iqn: str) -> TargetConfig | None:
        return next((t for t in self.targets if t.iqn.lower() == iqn.lower()), None)

    def ha_binding(self, iqn: str, lun: int) -> HaDeviceBinding | None:
        """The HA device that LUN ``lun`` of target ``iqn`` is a replica of, if any."""
        return next((b for b in self.ha_devices
                     if b.target.lower() == iqn.lower() and b.lun == lun), None)

    def with_targets(self, targets: tuple[TargetConfig, ...]) -> NodeConfig:
        return replace(self, targets=targets)


def default_naa(target_iqn: str, lun: int) -> str:
    """A stable NAA type 3 (locally assigned) designator derived from the target and LUN.

    HA partners that must present one identity set ``naa`` explicitly instead.
    """
    digest = hashlib.sha256(f"{target_iqn.lower()}/{lun}".encode()).hexdigest()
    return "3" + digest[:15]


def default_serial(target_iqn: str, lun: int) -> str:
    return "SB" + hashlib.sha256(f"{target_iqn.lower()}/{lun}".encode()).hexdigest()[:14].upper()


def _portal(reader: _Reader, raw: Any, key: str) -> PortalConfig:
    t = reader.table(raw, key, {"address", "port", "tpgt"})
    address = _address(reader, f"{key}.address", reader.string(t, key, "address", required=True))
    return PortalConfig(address=address,
                        port=reader.integer(t, key, "port", 3260, 0, 65535),
                        tpgt=reader.integer(t, key, "tpgt", 1, 1, 65535))


def _management(reader: _Reader, raw: Any) -> ManagementConfig:
    t = reader.table(raw, "management", {"listen", "token_env"})
    listen = reader.string(t, "management", "listen", "127.0.0.1:0")
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise reader.fail("management.listen", f"{listen!r} is not ADDRESS:PORT",
                          "write it like \"127.0.0.1:0\" (0 picks a free port)")
    host = _address(reader, "management.listen", host)
    token_env = reader.string(t, "management", "token_env", "SPLITBRAIN_TARGET_TOKEN")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token_env):
        raise reader.fail("management.token_env", f"{token_env!r} is not a variable name",
                          "name an environment variable such as SPLITBRAIN_TARGET_TOKEN")
    return ManagementConfig(host=host, port=int(port_text), token_env=token_env)


def _chap(reader: _Reader, raw: Any, key: str) -> Chap:
    t = reader.table(raw, key, {"username", "secret", "secret_file", "mutual_username",
                                "mutual_secret", "mutual_secret_file"})
    username = reader.string(t, key, "username", required=True)
    secret = reader.secret(t, key, "secret")
    if secret is None:
        raise reader.fail(f"{key}.secret", "missing",
                          "add secret = \"${ENV}\" or secret_file = \"/path\"")
    mutual_user = t.get("mutual_username")
    mutual_secret = reader.secret(t, key, "mutual_secret")
    if (mutual_user is None) != (mutual_secret is None):
        raise reader.fail(f"{key}.mutual_username", "mutual CHAP needs a username and a secret",
                          "set both mutual_username and mutual_secret, or neither")
    if mutual_user is not None:
        mutual_user = reader.string(t, key, "mutual_username", required=True)
    if mutual_secret is not None and mutual_secret == secret:
        raise reader.fail(f"{key}.mutual_secret", "equals the initiator's secret",
                          "RFC 7143 section 9.2.1 forbids it; use a different secret")
    for name, value in (("secret", secret), ("mutual_secret", mutual_secret)):
        if value is not None and len(value) < 12:
            raise reader.fail(f"{key}.{name}", "shorter than 12 characters",
                              "use a secret of 12 to 16 characters (Windows requires it)")
    return Chap(username, secret, mutual_user, mutual_secret)


def _lun(reader: _Reader, raw: Any, key: str, iqn: str) -> LunConfig:
    t = reader.table(raw, key, {"lun", "image", "size", "serial", "naa", "vendor", "product",
                                "block_size"})
    lun = reader.integer(t, key, "lun", 0, 0, 16383)
    if "image" not in t:
        raise reader.fail(f"{key}.image", "missing", "add image = \"name.img\" (under data_dir)")
    image = reader.path(t["image"], f"{key}.image")
    if "size" not in t:
        raise reader.fail(f"{key}.size", "missing", "add size = \"1GiB\"")
    try:
        size = parse_size(t["size"])
    except ValueError:
        raise reader.fail(f"{key}.size", f"{t['size']!r} is not a size",
                          "write it like \"1GiB\", \"512MiB\" or a byte count") from None
    block_size = reader.integer(t, key, "block_size", BLOCK_SIZE, 512, 65536)
    if block_size & (block_size - 1):
        raise reader.fail(f"{key}.block_size", f"{block_size} is not a power of two",
                          "use 512 or 4096")
    if size <= 0 or size % block_size:
        raise reader.fail(f"{key}.size", f"{size} bytes is not a positive multiple of "
                          f"{block_size}", f"round it to a multiple of {block_size} bytes")
    serial = reader.string(t, key, "serial", default_serial(iqn, lun))
    if not serial.isascii() or not serial.isprintable() or len(serial) > 64 or not serial:
        raise reader.fail(f"{key}.serial", f"{serial!r} is not 1-64 printable ASCII characters",
                          "use letters, digits and dashes")
    naa = reader.string(t, key, "naa", default_naa(iqn, lun)).lower().removeprefix("0x")
    if not _NAA_ID.match(naa) or naa[0] not in "2356":
        raise reader.fail(f"{key}.naa", f"{naa!r} is not an NAA designator",
                          "give 16 hex digits starting 2, 3 or 5, or 32 starting 6")
    if (naa[0] == "6") != (len(naa) == 32):
        raise reader.fail(f"{key}.naa", f"NAA type {naa[0]} has the wrong length",
                          "NAA 6 is 32 hex digits; NAA 2, 3 and 5 are 16")
    vendor = reader.string(t, key, "vendor", "SPLITBRN")
    product = reader.string(t, key, "product", "REFERENCE-LU")
    for name, value, width in (("vendor", vendor, 8), ("product", product, 16)):
        if len(value) > width or not value.isascii():
            raise reader.fail(f"{key}.{name}", f"{value!r} is longer than {width} ASCII chars",
                              f"shorten it to {width} characters")
    return LunConfig(lun, image, size, serial, naa, vendor, product, block_size)


def _target(reader: _Reader, raw: Any, key: str) -> TargetConfig:
    t = reader.table(raw, key, {"iqn", "alias", "initiators", "chap", "lun"})
    iqn = reader.string(t, key, "iqn", required=True)
    if not is_iscsi_name(iqn):
        raise reader.fail(f"{key}.iqn", f"{iqn!r} is not an iSCSI name",
                          "write it like iqn.2026-11.org.example:node1.ha1")
    initiators = t.get("initiators", [])
    if not isinstance(initiators, list) or not all(isinstance(i, str) for i in initiators):
        raise reader.fail(f"{key}.initiators", "expected a list of initiator names",
                          "write it as initiators = [\"iqn....\"] (empty admits all)")
    for i, name in enumerate(initiators):
        if not is_iscsi_name(name):
            raise reader.fail(f"{key}.initiators[{i}]", f"{name!r} is not an iSCSI name",
                              "write it like iqn.1991-05.com.microsoft:host1")
    chap = _chap(reader, t["chap"], f"{key}.chap") if "chap" in t else None
    raw_luns = t.get("lun", [])
    if not isinstance(raw_luns, list):
        raise reader.fail(f"{key}.lun", "expected an array of tables", "write [[target.lun]]")
    luns = tuple(_lun(reader, r, f"{key}.lun[{j}]", iqn) for j, r in enumerate(raw_luns))
    seen: set[int] = set()
    for j, lun in enumerate(luns):
        if lun.lun in seen:
            raise reader.fail(f"{key}.lun[{j}].lun", f"LUN {lun.lun} appears twice",
                              "give every LUN of a target its own number")
        seen.add(lun.lun)
    alias = reader.string(t, key, "alias", "")
    return TargetConfig(iqn, alias, tuple(initiators), chap, luns)


def _limits(reader: _Reader, raw: Any) -> SessionLimits:
    d = SessionLimits()
    t = reader.table(raw, "limits", set(d.__dataclass_fields__))
    mrdsl = reader.integer(t, "limits", "max_recv_data_segment_length",
                           d.max_recv_data_segment_length, 512, 16777215)
    return SessionLimits(
        queue_depth=reader.integer(t, "limits", "queue_depth", d.queue_depth, 1, 65536),
        max_recv_data_segment_length=mrdsl,
        max_burst_length=reader.integer(t, "limits", "max_burst_length", d.max_burst_length,
                                        512, 16777215),
        first_burst_length=reader.integer(t, "limits", "first_burst_length",
                                          d.first_burst_length, 512, 16777215),
        max_connections=reader.integer(t, "limits", "max_connections", d.max_connections,
                                       1, 1_000_000),
        max_pending_write_bytes=reader.integer(t, "limits", "max_pending_write_bytes",
                                               d.max_pending_write_bytes, 1 << 20, 1 << 40),
        login_timeout_s=reader.number(t, "limits", "login_timeout_s", d.login_timeout_s,
                                      0.1, 3600),
        nop_in_interval_s=reader.number(t, "limits", "nop_in_interval_s",
                                        d.nop_in_interval_s, 0, 3600),
        nop_in_timeout_s=reader.number(t, "limits", "nop_in_timeout_s", d.nop_in_timeout_s,
                                       0.1, 3600),
    )


def parse_config(data: Mapping[str, Any], *, source: str = "<config>",
                 env: Mapping[str, str] | None = None, base: Path | None = None) -> NodeConfig:
    """Build a NodeConfig from parsed TOML; relative paths resolve against ``base``."""
    reader = _Reader(source, os.environ if env is None else env, base or Path.cwd())
    top = reader.table(dict(data), "",
                       {"node", "portal", "management", "target", "limits", "ha_device"})
    node = reader.table(top.get("node", {}), "node",
                        {"name", "data_dir", "write_through", "defects", "volatile_writes"})
    name = reader.string(node, "node", "name", required=True)
    if "data_dir" not in node:
        raise reader.fail("node.data_dir", "missing",
                          "add data_dir = \"/path\" (image files and state go there)")
    data_dir = reader.path(node["data_dir"], "node.data_dir")
    write_through = node.get("write_through", True)
    if not isinstance(write_through, bool):
        raise reader.fail("node.write_through", f"expected true or false, got {write_through!r}",
                          "write it as write_through = true")
    volatile_writes = node.get("volatile_writes", False)
    if not isinstance(volatile_writes, bool):
        raise reader.fail("node.volatile_writes", f"expected true or false, got "
                          f"{volatile_writes!r}", "write it as volatile_writes = true")
    defects = node.get("defects", [])
    if not isinstance(defects, list) or not all(isinstance(d, str) for d in defects):
        raise reader.fail("node.defects", "expected a list of defect names",
                          "write it as defects = [\"name\"] or leave it out")
    from harness.target.defects import Defect

    unknown = sorted(set(defects) - {d.value for d in Defect})
    if unknown:
        raise reader.fail("node.defects", f"unknown defect mode {unknown[0]!r}",
                          "use one of " + ", ".join(sorted(d.value for d in Defect)))
    reader.base = data_dir  # LU images resolve under the data directory
    raw_portals = top.get("portal")
    if not raw_portals or not isinstance(raw_portals, list):
        raise reader.fail("portal", "no portal configured",
                          "add at least one [[portal]] with address = \"127.0.0.1\"")
    portals = tuple(_portal(reader, r, f"portal[{i}]") for i, r in enumerate(raw_portals))
    bound = [(p.address, p.port) for p in portals if p.port]
    if len(bound) != len(set(bound)):
        raise reader.fail("portal", "two portals share an address and port",
                          "give every portal its own address or port")
    management = _management(reader, top.get("management", {}))
    raw_targets = top.get("target", [])
    if not isinstance(raw_targets, list):
        raise reader.fail("target", "expected an array of tables", "write [[target]] sections")
    targets = tuple(_target(reader, r, f"target[{i}]") for i, r in enumerate(raw_targets))
    seen: set[str] = set()
    for i, t in enumerate(targets):
        if t.iqn.lower() in seen:
            raise reader.fail(f"target[{i}].iqn", f"{t.iqn} appears twice",
                              "give every target its own IQN")
        seen.add(t.iqn.lower())
    limits = _limits(reader, top.get("limits", {}))
    ha_devices = _ha_devices(reader, top.get("ha_device", []), name, data_dir, targets)
    if ha_devices and not write_through:
        raise reader.fail("node.write_through", "false is refused on a node with HA devices "
                          "(a mirrored write is acknowledged only once every replica has it "
                          "on disk)", "remove write_through = false")
    return NodeConfig(name, data_dir, portals, management, targets, limits, write_through,
                      tuple(defects), source, ha_devices, volatile_writes)


def _ha_devices(reader: _Reader, raw: Any, node: str, data_dir: Path,
                targets: tuple[TargetConfig, ...]) -> tuple[HaDeviceBinding, ...]:
    from harness.target.ha.node_config import parse_ha_device  # it builds on this module

    if not isinstance(raw, list):
        raise reader.fail("ha_device", "expected an array of tables",
                          "write [[ha_device]] sections")
    bindings = []
    for i, table in enumerate(raw):
        key = f"ha_device[{i}]"
        b = parse_ha_device(reader, table, key, node=node, state_dir=data_dir)
        target = next((t for t in targets if t.iqn.lower() == b.target.lower()), None)
        if target is None or all(lun.lun != b.lun for lun in target.luns):
            raise reader.fail(f"{key}.target", f"no LUN {b.lun} on a target {b.target} here",
                              "name a [[target]] of this node and one of its [[target.lun]]")
        if any(o.device.alias == b.device.alias for o in bindings):
            raise reader.fail(f"{key}.alias", f"{b.device.alias} appears twice",
                              "give every HA device its own alias")
        bindings.append(b)
    return tuple(bindings)


def load_config(path: str | os.PathLike[str], *,
                env: Mapping[str, str] | None = None) -> NodeConfig:
    """Read and validate a node's TOML file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(p), "(file)", "does not exist",
                          "pass the path of an existing node TOML with --config") from None
    except OSError as exc:
        raise ConfigError(str(p), "(file)", f"cannot be read: {exc.strerror}",
                          "check the path and its permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), "(syntax)", f"is not valid TOML: {exc}",
                          "fix the line the parser names") from None
    return parse_config(data, source=str(p), env=env, base=p.resolve().parent)


def parse_target(raw: Mapping[str, Any], *, data_dir: Path, source: str = "management API",
                 env: Mapping[str, str] | None = None) -> TargetConfig:
    """One target (with its LUNs) given as a table, as the management API receives it."""
    reader = _Reader(source, os.environ if env is None else env, data_dir)
    return _target(reader, dict(raw), "target")


def parse_lun(raw: Mapping[str, Any], *, target_iqn: str, data_dir: Path,
              source: str = "management API") -> LunConfig:
    """One LUN given as a table, as the management API receives it."""
    reader = _Reader(source, {}, data_dir)
    return _lun(reader, dict(raw), "lun", target_iqn)
