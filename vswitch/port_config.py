"""A port's settings, each declared once (`PortConfig`), and what is derived from them.

Each setting's type, default, checks, help text and whether it may change at
run time are written here and nowhere else.  The TOML loader (`parse_port`),
the control server's ``set-port`` coercion (`coerce_setting`), vswitchctl's
``add-port`` options and ``set-port`` keys, ``show`` (`PortConfig.view`), the
saved config (`PortConfig.to_dict`), the switch element's `SwitchPort`
(`PortConfig.switch_settings`) and the live driver's run-time changes
(`change_port`, `PortConfig.touched_by`) all read it.

``applies`` says what a run-time change touches: ``switch`` (the `SwitchPort`
field of the same name), ``vlan`` (the switch's `PortVlan`, built from
vlan_mode, tag and trunks), ``device`` (the open interface: namespace, MTU),
``pool`` (the guest's VMDq pool: its VLAN and MAC), ``vf`` (the guest's VF: its
``ip link set PF vf N`` admin settings).  A setting with no
``applies`` takes effect later (``persistent``: when the daemon exits).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vswitch.core.frame import parse_mac
from vswitch.elements.vlan import MODES, PortVlan, check_vid, parse_vlan_list
from vswitch.schema import ConfigError, Setting, declared, load, setting, settings_of, to_dict, view

if TYPE_CHECKING:
    from vswitch.elements.learning_switch import SwitchPort

PORT_TYPES = ("tap", "attach", "replay")
IFNAMSIZ = 16                  # the kernel's interface-name buffer, its terminating NUL included
MAX_PORT_NUMBER = 65279        # OpenFlow's OFPP_MAX, as OVS's ofport_request
MAX_ENTRIES = 1_000_000        # mac_table_size, mac_limit, move-damping moves


def check_ifname(name: str) -> str:
    """An interface name as the kernel's ``dev_valid_name()`` takes it: 1-15 bytes, not ``.``
    or ``..``, no ``/``, ``:`` or whitespace (the kernel's isspace: tab, newline, VT, FF, CR,
    space and byte 0xa0).  Also no NUL (C strings end there) and no ``%`` (a name with one is a
    template from which the kernel picks a free name, so the port could never find its
    interface).  ValueError says which rule the name breaks."""
    try:
        raw = name.encode()
    except UnicodeEncodeError:
        raise ValueError(f"name {name!r}: not valid Unicode") from None
    if not raw:
        raise ValueError("name '': an interface name cannot be empty")
    if len(raw) >= IFNAMSIZ:
        raise ValueError(f"name {name!r}: an interface name is at most {IFNAMSIZ - 1} bytes "
                         f"(this one is {len(raw)})")
    if name in (".", ".."):
        raise ValueError(f"name {name!r}: not an interface name")
    bad = sorted({chr(b) for b in raw if b in b"/:%\0\t\n\v\f\r \xa0"})
    if bad:
        raise ValueError(f"name {name!r}: an interface name has no {' or '.join(map(repr, bad))} "
                         "(no '/', ':', '%', NUL or whitespace)")
    return name


def check_netns_name(name: str) -> str:
    """A namespace name as ``ip netns`` takes it (a file under /run/netns): 1-255 bytes, not
    ``.`` or ``..``, no ``/`` or NUL, so it can never name a path elsewhere."""
    try:
        raw = name.encode()
    except UnicodeEncodeError:
        raise ValueError(f"netns {name!r}: not valid Unicode") from None
    if not raw or len(raw) > 255 or name in (".", "..") or b"/" in raw or b"\0" in raw:
        raise ValueError(f"netns {name!r}: a namespace name (as `ip netns add NAME`) is 1-255 bytes, "
                         "not '.' or '..', with no '/' or NUL")
    return name


def _trunks(v: str | list[Any]) -> str:
    """A VLAN list as text ("10,20-29"); a TOML array [10, 20] becomes "10,20"."""
    parse_vlan_list(v)
    return v if isinstance(v, str) else ",".join(str(x) for x in v)


def _guest_mac(v: str) -> str:
    if parse_mac(v)[0] & 1:
        raise ValueError(f"{v}: a guest MAC must be unicast")
    return v


_FLAG = ("switch",)


@declared
class PortConfig:
    """One ``[[port]]`` table: every field is a declared setting (`vswitch.schema`)."""

    name: str = setting(
        help="interface name: 1-15 bytes, no '/', ':', '%' or whitespace", runtime=False, check=check_ifname,
        example="vm9")
    type: str = setting(
        default="tap", choices=PORT_TYPES, runtime=False, example="attach",
        help="tap: the daemon creates the device; attach: an existing interface (a VM's tap, a veth); "
             "replay: a capture's port (vswitch-bench replay; vswitchd runs tap and attach)")
    number: int | None = setting(
        default=None, bounds=(1, MAX_PORT_NUMBER), runtime=False, example=7,
        help="port number (default: the lowest free; at start 1, 2, ... in config order)")
    vlan_mode: str | None = setting(
        default=None, choices=MODES, runtime=True, applies=("vlan", "pool"), example="native-tagged",
        help="as Open vSwitch's vlan_mode (default: access with a tag only, native-untagged with a tag and "
             "trunks, trunk otherwise)")
    tag: int | None = setting(
        default=None, check=check_vid, runtime=True, applies=("vlan", "pool"), option="--vlan", metavar="VID",
        example=10, help="the access (or native) VLAN, 0-4094")
    trunks: str | None = setting(
        default=None, also=(list,), check=_trunks, runtime=True, applies=("vlan", "pool"), option="--trunk",
        metavar="LIST", example="10,20-29", help="the VLANs carried tagged, e.g. 10,20-29 (default: all)")
    learning: bool = setting(default=True, runtime=True, applies=_FLAG, example=False,
                             help="learn source MACs on the port")
    flood: bool = setting(default=True, runtime=True, applies=_FLAG, example=False,
                          help="flood unknown unicast to the port")
    mcast_flood: bool = setting(default=True, runtime=True, applies=_FLAG, example=False,
                                help="flood multicast to the port")
    bcast_flood: bool = setting(default=True, runtime=True, applies=_FLAG, example=False,
                                help="flood broadcast to the port")
    isolated: bool = setting(default=False, runtime=True, applies=_FLAG, example=True,
                             help="no frames to or from other isolated ports (the Linux bridge's isolated flag)")
    hairpin: bool = setting(default=False, runtime=True, applies=_FLAG, example=True,
                            help="frames may go back out of the port they came in on")
    mtu: int = setting(default=1500, bounds=(68, 65535), runtime=True, applies=("switch", "device"), example=9000,
                       help="the interface's MTU; the port takes frames up to MTU + 18 (header and one VLAN tag)")
    mac_limit: int | None = setting(
        default=None, bounds=(1, MAX_ENTRIES), bounds_note="(leave it out for no limit)", runtime=True,
        applies=_FLAG, metavar="N", example=100, help="at most N MACs learned on the port (default: no limit)")
    mac_limit_policy: str = setting(
        default="stop", choices=("stop", "evict"), runtime=True, applies=_FLAG, example="evict",
        help="at the limit: stop learning on the port (its frames still flow, flooded), or evict its least "
             "recently seen entry")
    netns: str | None = setting(
        default=None, check=check_netns_name, runtime=True, applies=("device",), metavar="NS", example="guest1",
        help="tap: move the interface into this network namespace (`ip netns add NAME` makes it)")
    persistent: bool = setting(default=False, runtime=True, example=True,
                               help="tap: keep the device when the daemon stops")
    mac: str | None = setting(
        default=None, check=_guest_mac, runtime=True, applies=("pool", "vf"), metavar="MAC",
        example="52:54:00:12:34:01",
        help="the guest's MAC: its VMDq pool's filter ([nic] mode = vmdq), or its VF's admin MAC (mode = sriov: "
             "`ip link set PF vf N mac`; a tap port's interface takes it); default: learned from its frames")
    vf: int | None = setting(
        default=None, bounds=(0, 63), runtime=False, metavar="N", example=0,
        help="the guest's VF ([nic] mode = sriov): the port's frames are VF N's DMA, the NIC switches them")
    vf_vlan: int = setting(default=0, bounds=(0, 4095), runtime=True, applies=("vf",), metavar="VID", example=10,
                           help="the VF's port VLAN (`ip link set PF vf N vlan V`): inserted on TX, stripped on RX, "
                                "0 for none")
    vf_qos: int = setting(default=0, bounds=(0, 7), runtime=True, applies=("vf",), metavar="PCP", example=3,
                          help="the port VLAN's priority (`vlan V qos Q`)")
    vf_spoofchk: bool = setting(default=True, runtime=True, applies=("vf",), example=False,
                                help="MAC and VLAN anti-spoof on the VF's TX (`spoofchk on|off`)")
    vf_trust: bool = setting(default=False, runtime=True, applies=("vf",), example=True,
                             help="the VF may change its admin MAC and go allmulti (`trust on|off`)")
    vf_max_tx_rate: int = setting(default=0, bounds=(0, 100_000), runtime=True, applies=("vf",), metavar="MBPS",
                                  example=500, help="the VF's TX rate limit in Mb/s, 0 for none (`max_tx_rate`)")
    vf_min_tx_rate: int = setting(default=0, bounds=(0, 100_000), runtime=True, applies=("vf",), metavar="MBPS",
                                  example=100, help="the VF's guaranteed TX rate in Mb/s (`min_tx_rate`; ixgbe: 0)")
    vf_state: str = setting(default="auto", choices=("auto", "enable", "disable"), runtime=True, applies=("vf",),
                            example="disable", help="the VF's link state (`state auto|enable|disable`): disable "
                                                    "carries nothing")

    def check(self) -> None:
        """The rules between settings (`vswitch.schema.load` calls this after each setting's own)."""
        if self.netns is not None and self.type != "tap":
            raise ValueError(f"netns: only a tap port moves into a namespace (an {self.type} port uses an "
                             "interface in the daemon's namespace)")
        self.vlan()                    # vlan_mode with tag and trunks
        if self.vf is None:
            set_vf = [k for k in VF_SETTINGS if getattr(self, k) != PORT_SETTINGS[k].default]
            if set_vf:
                raise ValueError(f"{set_vf[0]}: only a port on a VF (vf = N, [nic] mode = sriov) has VF settings")
        else:
            on_switch = [s.name for s in SWITCH_SETTINGS if s.name != "mtu" and getattr(self, s.name) != s.default]
            on_switch += [k for k in ("tag", "trunks", "vlan_mode") if getattr(self, k) is not None]
            if on_switch:
                raise ValueError(f"{on_switch[0]}: a port on a VF is not on the software switch (its VLAN is "
                                 "vf_vlan, the NIC's port VLAN)")

    def vlan(self) -> PortVlan:
        return PortVlan.build(tag=self.tag, trunks=self.trunks, mode=self.vlan_mode)

    def switch_settings(self) -> dict[str, Any]:
        """What the switch element holds of this port (`SwitchPort`'s fields but number and name)."""
        return {"vlan": self.vlan(), **{s.name: getattr(self, s.name) for s in SWITCH_SETTINGS}}

    def vf_settings(self) -> dict[str, Any]:
        """The VF's admin settings (``ip link set PF vf N ...``): its MAC and the ``vf_*`` keys."""
        return {"mac": self.mac, **{k: getattr(self, k) for k in VF_SETTINGS}}

    def switch_port(self, number: int) -> SwitchPort:
        # Imported here: vswitchctl reads this module for its options and needs no dataplane.
        from vswitch.elements.learning_switch import SwitchPort
        return SwitchPort(number=number, name=self.name, **self.switch_settings())

    def to_dict(self) -> dict[str, Any]:
        """Only the keys that differ from the defaults (for writing config back)."""
        return to_dict(self)

    def view(self) -> dict[str, Any]:
        """Every setting, defaults included (``show``)."""
        return view(self)

    def touched_by(self, old: PortConfig) -> frozenset[str]:
        """What changing ``old`` into this port touches (the ``applies`` of each setting that differs)."""
        return frozenset(a for s in PORT_SETTINGS.values() if getattr(self, s.name) != getattr(old, s.name)
                         for a in s.applies)


PORT_SETTINGS: dict[str, Setting] = settings_of(PortConfig)
RUNTIME_SETTINGS: tuple[str, ...] = tuple(k for k, s in PORT_SETTINGS.items() if s.runtime)
SWITCH_SETTINGS: tuple[Setting, ...] = tuple(s for s in PORT_SETTINGS.values() if "switch" in s.applies)
PORT_FLAGS = tuple(s.name for s in SWITCH_SETTINGS if bool in s.types)
# A VF's admin settings (its MAC is the port's ``mac``, which a VMDq guest has too).
VF_SETTINGS: tuple[str, ...] = tuple(k for k in PORT_SETTINGS if k.startswith("vf_"))


def parse_port(data: Mapping[str, Any], where: str) -> PortConfig:
    """A port's table (from the file, or a request) as a PortConfig; ConfigError ``where: key...``."""
    return load(PortConfig, data, where, "port")


def coerce_setting(key: str, text: str) -> Any:
    """A command-line ``key=value`` value as the setting's type (``none`` clears an optional one);
    ValueError names the key.  ``key`` must be declared."""
    return PORT_SETTINGS[key].from_text(text)


def change_port(cfg: PortConfig, changes: Mapping[str, Any], where: str) -> PortConfig:
    """``cfg`` with ``changes`` made (None clears a setting back to its default), checked as the
    config file is.  A setting declared not to change at run time is refused unless it keeps its
    value; ConfigError names the key.  ``cfg`` itself is not touched."""
    for key, value in changes.items():
        s = PORT_SETTINGS.get(key)
        if s is None:
            raise ConfigError(f"{where}: unknown port setting {key!r} "
                              f"(settable at run time: {', '.join(RUNTIME_SETTINGS)})")
        if not s.runtime and value != getattr(cfg, key):
            raise ConfigError(f"{where}: {key} cannot change at run time: delete the port and add it again")
    merged = {k: v for k, v in {**cfg.to_dict(), **changes}.items() if v is not None}
    return parse_port(merged, where)
