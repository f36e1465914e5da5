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
``ip link set PF vf N`` admin settings), ``qdisc`` and ``ingress`` (the port's egress
qdisc, its policer and storm control), ``nic_qdisc`` (the policies on the guest's NIC
queues: its pool's or its VF's).  A setting with no
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


def _qmp_path(v: str) -> str:
    """A unix socket's path: absolute, at most 107 bytes (sun_path), no NUL."""
    raw = v.encode(errors="replace")
    if not v.startswith("/") or len(raw) > 107 or "\0" in v:
        raise ValueError(f"qmp {v!r}: the absolute path of QEMU's QMP unix socket (at most 107 bytes)")
    return v


def _trunks(v: str | list[Any]) -> str:
    """A VLAN list as text ("10,20-29"); a TOML array [10, 20] becomes "10,20"."""
    parse_vlan_list(v)
    return v if isinstance(v, str) else ",".join(str(x) for x in v)


def _guest_mac(v: str) -> str:
    if parse_mac(v)[0] & 1:
        raise ValueError(f"{v}: a guest MAC must be unicast")
    return v


_FLAG = ("switch",)
MAX_KBPS = 10**10              # 10 Tbit/s in kbit/s: any policing rate a port could carry
OVS_DEFAULT_BURST_KB = 8000    # Open vSwitch: ingress_policing_burst 0 means 8000 kbit


def qdisc_spec(v: str | dict[str, Any]) -> dict[str, Any]:
    """A qdisc setting as a table: ``"fq_codel"`` is ``{"kind": "fq_codel"}``."""
    return {"kind": v} if isinstance(v, str) else dict(v)


def check_qdisc(v: str | dict[str, Any]) -> str | dict[str, Any]:
    """An egress qdisc: a kind (``"fq_codel"``: its defaults) or a table with ``kind`` and the
    kind's tc-style parameters; checked by building it (`build_scheduler`), kept as given (text
    or numbers, so the saved file says what the user wrote)."""
    from vswitch.core.policies import KINDS, build_scheduler
    spec = qdisc_spec(v)
    kind = spec.pop("kind", None)
    if not isinstance(kind, str):
        raise ValueError(f"a qdisc table needs a kind (one of {', '.join(KINDS)})")
    build_scheduler(kind, **spec)          # ParamError (a ValueError) names the kind and parameter
    return v if isinstance(v, str) else {"kind": kind, **spec}


# The settings that are a queue policy: set-port takes KEY=KIND and KEY.PARAM=VALUE for each.
QDISC_KEYS = ("qdisc", "rx_qdisc", "tx_qdisc")


def fold_qdisc(current: str | dict[str, Any] | None, changes: Mapping[str, Any],
               params: Mapping[str, Any], key: str = "qdisc") -> dict[str, Any]:
    """``set-port`` keys ``qdisc=KIND`` and ``qdisc.PARAM=VALUE`` as one ``qdisc`` change (or
    ``rx_qdisc``/``tx_qdisc``, ``key``): with ``KEY=KIND`` a new qdisc of that kind with the
    given parameters; without it, the port's ``current`` one with those parameters changed
    (``KEY.PARAM=none``: back to its default).  ValueError says what is wrong."""
    out = dict(changes)
    if not params:
        return out
    if key in out:
        base = out[key]
        if base is None:
            raise ValueError(f"{key}=none takes no {key}.PARAM settings")
        spec = qdisc_spec(base)
    elif current is not None:
        spec = qdisc_spec(current)
    else:
        raise ValueError(f"{', '.join(f'{key}.{k}' for k in params)}: the port has no {key}; "
                         f"give {key}=KIND too")
    for k, v in params.items():
        if k == "kind" or not k:
            raise ValueError(f"{key}.{k}: set the kind with {key}=KIND")
        if isinstance(v, str) and v.lower() == "none":
            spec.pop(k, None)
        else:
            spec[k] = v
    out[key] = spec
    return out


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
    qdisc: str | dict | None = setting(  # type: ignore[type-arg]  # a kind, or a table of tc-style parameters
        default=None, check=check_qdisc, runtime=True, applies=("qdisc",), metavar="KIND",
        example="fq_codel",
        help="the egress qdisc: a kind (fq_codel, tbf, drr, htb, ...; docs/policies.md) with its tc-style "
             "parameters, a [port.qdisc] table (kind = \"tbf\", rate = \"10mbit\", ...) or set-port's "
             "qdisc=KIND qdisc.PARAM=VALUE ...; frames the switch sends the port wait in it (default: none, "
             "straight to the device)")
    rx_qdisc: str | dict | None = setting(  # type: ignore[type-arg]  # as qdisc
        default=None, check=check_qdisc, runtime=True, applies=("nic_qdisc",), metavar="KIND",
        example="fq_codel",
        help="the queue policy on the NIC's RX queues that feed the guest ([nic] mode = vmdq: its pool's; "
             "sriov: its VF's), between the ring and the host's (or the guest driver's) poll: each poll takes "
             "the ring into it and gets what it lets go; a kind or a [port.rx_qdisc] table as qdisc, set-port's "
             "rx_qdisc=KIND rx_qdisc.PARAM=VALUE ... (default: none, the ring's FIFO)")
    tx_qdisc: str | dict | None = setting(  # type: ignore[type-arg]  # as qdisc
        default=None, check=check_qdisc, runtime=True, applies=("nic_qdisc",), metavar="KIND",
        example="pfifo",
        help="the queue policy in front of the NIC's TX queue the guest sends on (its pool's or its VF's "
             "queue 0): the guest's frames wait in it and move to the TX ring as descriptors free up; a kind "
             "or a [port.tx_qdisc] table, set-port's tx_qdisc=KIND tx_qdisc.PARAM=VALUE ... (default: "
             "[nic] tx_qdisc, else none)")
    ingress_policing_rate: int = setting(
        default=0, bounds=(0, MAX_KBPS), runtime=True, applies=("ingress",), metavar="KBPS", example=10000,
        help="police frames received on the port to this many kbit/s (1000 bit/s), dropping the excess, as "
             "Open vSwitch's ingress_policing_rate (0: off)")
    ingress_policing_burst: int = setting(
        default=0, bounds=(0, MAX_KBPS), runtime=True, applies=("ingress",), metavar="KB", example=1000,
        help=f"the policer's bucket in kbit (1000 bits), as Open vSwitch's ingress_policing_burst "
             f"(0: {OVS_DEFAULT_BURST_KB} kbit)")
    storm_broadcast_pps: int | None = setting(
        default=None, bounds=(0, 10**9), runtime=True, applies=("ingress",), metavar="N", example=100,
        help="storm control: at most N broadcast frames received per second (default: no limit)")
    storm_multicast_pps: int | None = setting(
        default=None, bounds=(0, 10**9), runtime=True, applies=("ingress",), metavar="N", example=1000,
        help="storm control: at most N multicast frames received per second (default: no limit)")
    vf: int | None = setting(
        default=None, bounds=(0, 63), runtime=False, metavar="N", example=0,
        help="the guest's VF ([nic] mode = sriov): the port's frames are VF N's DMA, the NIC switches them")
    qmp: str | None = setting(
        default=None, check=_qmp_path, runtime=False, metavar="PATH", example="/run/vm0.qmp",
        help="an attach port on a VF: the QMP socket of the QEMU whose tap it is (-qmp unix:PATH,server=on,"
             "wait=off); the daemon follows the guest's receive filter (query-rx-filter) and its VF's driver "
             "joins the guest's multicast groups; config file only")
    vf_cpus: int = setting(default=1, bounds=(1, 64), runtime=False, metavar="N", example=2,
                           help="the guest's vCPUs as its (emulated) ixgbevf sees them: it opens min(N, 2) queue "
                                "pairs, the VF's RSS spreads over those and the guest's flows over the TX queues "
                                "(ixgbevf_set_num_queues; vf_max_tx_rate limits each TX queue, as ixgbe)")
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
        if self.ingress_policing_burst and not self.ingress_policing_rate:
            raise ValueError("ingress_policing_burst: only with ingress_policing_rate (the rate it bursts over)")
        if self.qmp is not None and (self.vf is None or self.type != "attach"):
            raise ValueError("qmp: only an attach port on a VF (a QEMU guest's tap, vf = N) follows its guest's "
                             "receive filter")
        if self.vf is None:
            set_vf = [k for k in VF_SETTINGS if getattr(self, k) != PORT_SETTINGS[k].default]
            if set_vf:
                raise ValueError(f"{set_vf[0]}: only a port on a VF (vf = N, [nic] mode = sriov) has VF settings")
        else:
            on_switch = [s.name for s in SWITCH_SETTINGS if s.name != "mtu" and getattr(self, s.name) != s.default]
            on_switch += [k for k in ("tag", "trunks", "vlan_mode") if getattr(self, k) is not None]
            on_switch += [k for k in ("qdisc", "ingress_policing_rate", "ingress_policing_burst",
                                      "storm_broadcast_pps", "storm_multicast_pps")
                          if getattr(self, k) != PORT_SETTINGS[k].default]
            if on_switch:
                raise ValueError(f"{on_switch[0]}: a port on a VF is not on the software switch (its VLAN is "
                                 "vf_vlan, the NIC's port VLAN; its rate vf_max_tx_rate)")

    def policer_params(self) -> dict[str, Any] | None:
        """The ingress policer's parameters (`build_policer`), None when policing is off: a
        two-colour srTCM (cir, cbs, red frames dropped), as tc's police action OVS sets up."""
        if not self.ingress_policing_rate:
            return None
        burst_kb = self.ingress_policing_burst or OVS_DEFAULT_BURST_KB
        return {"mode": "srtcm", "cir": self.ingress_policing_rate * 1000, "cbs": burst_kb * 1000 // 8,
                "ebs": 0, "red": "drop"}

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
# Settings only the config file sets (the daemon connects to what they name): not add-port's.
CONFIG_FILE_ONLY: tuple[str, ...] = ("qmp",)


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
            how = ("it is set in the config file only (restart the daemon)" if key in CONFIG_FILE_ONLY
                   else "delete the port and add it again")
            raise ConfigError(f"{where}: {key} cannot change at run time: {how}")
    merged = {k: v for k, v in {**cfg.to_dict(), **changes}.items() if v is not None}
    return parse_port(merged, where)
