"""vswitchctl: control a running vswitchd.

Every show command takes ``--json``.  Errors exit 1 with one line on stderr
(unknown port, bad VLAN, daemon not running, permission denied on the socket).
"""

from __future__ import annotations

if __name__ == "__main__":          # run as a program: choose the dataplane build before importing it
    from vswitch import compiled as _compiled
    _compiled.install()

import argparse
import json
import sys
import textwrap
from typing import Any

from rich.table import Table

from vswitch.control.client import Client
from vswitch.control.protocol import DEFAULT_SOCKET, ControlError
from vswitch.graph_dot import collapse_idle, to_dot
from vswitch.port_config import CONFIG_FILE_ONLY, PORT_SETTINGS, QDISC_KEYS, RUNTIME_SETTINGS
from vswitch.qdisc_view import tc_text
from vswitch.render import fdb_table, make_console, port_counters_table, print_tables, switch_counters_table
from vswitch.schema import Setting


def _kv_pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k:
            raise ControlError(f"{it!r}: expected key=value")
        out[k] = v
    return out


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    return t


def render_show(r: dict[str, Any]) -> list[Table]:
    b = r["bridge"]
    ports = _table(f"bridge {b['name']} (ageing {b['ageing_time']:g} s, table {b['mac_table_size']}, "
                   f"up {b['uptime_s']:.0f} s, dataplane {b.get('dataplane', '?')})",
                   ["port", "no", "type", "state", "vlan", "flags", "netns", "detail"],
                   [[p["name"], p["number"], p["type"], p["state"], _vlan_text(p), _flags_text(p),
                     p.get("netns"), p.get("error") or ""] for p in r["ports"]])
    out = [ports]
    if r.get("mirrors"):
        out.append(render_mirrors(r["mirrors"]))
    return out


def _vlan_text(p: dict[str, Any]) -> str:
    mode = p.get("vlan_mode")
    if p.get("tag") is not None and mode in (None, "access"):
        return f"access {p['tag']}"
    if mode in ("native-tagged", "native-untagged"):
        return f"{mode} {p.get('tag')} trunks {p.get('trunks') or 'all'}"
    return f"trunk {p.get('trunks') or 'all'}"


# Settings `show` draws in columns of their own; every other one is listed under flags when it
# differs from its declared default.
_COLUMNS = ("name", "number", "type", "vlan_mode", "tag", "trunks", "netns")


def _flags_text(p: dict[str, Any]) -> str:
    flags = []
    for k, s in PORT_SETTINGS.items():
        v = p.get(k, s.default)
        if k in _COLUMNS or v == s.default:
            continue
        if bool in s.types:
            flags.append(k if v else f"no-{k}")
        elif isinstance(v, dict) and "kind" in v:       # a qdisc table: its kind
            flags.append(f"{k} {v['kind']}")
        else:
            flags.append(f"{k} {v}")
    return ", ".join(flags)


def render_mirrors(ms: list[dict[str, Any]]) -> Table:
    return _table("mirrors", ["name", "select src", "select dst", "all", "output", "tx_packets", "tx_bytes",
                              "tx_dropped"],
                  [[m["name"], ",".join(m["select_src_port"]), ",".join(m["select_dst_port"]), m["select_all"],
                    m["output_port"] or m["output_pcap"], m["tx_packets"], m["tx_bytes"], m["tx_dropped"]]
                   for m in ms])


def render_counters(r: dict[str, Any]) -> list[Table]:
    out = [port_counters_table(r["ports"])]
    sw = r.get("switch")
    if sw:
        out.append(switch_counters_table(sw))
    return out


def render_perf(r: dict[str, Any]) -> list[Table]:
    cols = ["port", "wakeups", "busy %", "frames", "frames/batch", "rx ns/f", "switch ns/f", "tx ns/f",
            "total ns/f", "gso in", "max frame", "kernel drops"]

    def row(name: str, p: dict[str, Any]) -> list[Any]:
        return [name, p["wakeups"], f"{p['busy_pct']:.1f}", p["frames"], f"{p['frames_per_batch']:.1f}",
                f"{p['rx_ns_per_frame']:.0f}", f"{p['switch_ns_per_frame']:.0f}", f"{p['tx_ns_per_frame']:.0f}",
                f"{p['total_ns_per_frame']:.0f}", p["gso_frames_in"], p["max_frame_bytes"], p.get("kernel_dropped", 0)]
    t = _table("per-port stages (ns per received frame; tx = writes its frames caused)", cols,
               [row(n, p) for n, p in r["ports"].items()] + [row("total", r["total"])])
    el = _table("elements (busy: with what they pushed to; self: their own work)",
                ["element", "calls", "busy ms", "self ms"],
                [[n, e["calls"], f"{e['busy_ns'] / 1e6:.1f}", f"{e.get('self_ns', 0) / 1e6:.1f}"]
                 for n, e in r["elements"].items() if e["calls"]])
    lp = r["loop"]
    loop = _table("event loop", ["dataplane", "uptime s", "ticks", "max lag us", "busy poll us",
                                 "frames caught polling", "timer wake-ups", "timer ms"],
                  [[lp.get("dataplane", "?"), f"{lp['uptime_s']:.0f}", lp["ticks"], f"{lp['max_lag_us']:.0f}",
                    lp["busy_poll_us"], lp["busy_poll_catches"], lp.get("timer_wakeups", 0),
                    f"{lp.get('timer_ns', 0) / 1e6:.1f}"]])
    out = [t, el, loop]
    n = r.get("nic")
    if n:
        out.append(_table(f"emulated NIC ({n['mode']} mode): the model's own work, which NIC hardware "
                          "does without the host's CPU",
                          ["NIC model ms", "NIC model ns per received frame"],
                          [[f"{n['nic_model_ns'] / 1e6:.1f}", f"{n['nic_model_ns_per_frame']:.0f}"]]))
        sv = n.get("sriov")
        if sv:
            out.append(_table("SR-IOV: what a real hypervisor would spend (its switch) against the emulation's "
                              "own cost (NIC model, VF DMA, the guests' taps)",
                              ["hypervisor ms", "hypervisor ns/frame", "switch frames", "emulation ms",
                               "emulation ns/frame", "VF DMA I/O ms", "VF frames in"],
                              [[f"{sv['hypervisor_ns'] / 1e6:.1f}", f"{sv['hypervisor_ns_per_frame']:.0f}",
                                sv["switch_frames"], f"{sv['emulation_ns'] / 1e6:.1f}",
                                f"{sv['emulation_ns_per_frame']:.0f}", f"{sv['vf_dma_io_ns'] / 1e6:.1f}",
                                sv["vf_frames_in"]]]))
    return out


def render_nic(r: dict[str, Any]) -> list[Table]:
    c = r["counters"]
    pools_c = c.get("pools", {})
    binds = _table(f"NIC {r['profile']} ({r['mode']} mode), uplink {r['uplink']}",
                   ["pool", "port", "MAC", "VLAN", "queues", "gprc", "gorc", "gptc", "gotc", "rx_dropped"],
                   [[b["pool"], b["port"], b["mac"] or "(not yet seen)", b["vlan"], ",".join(map(str, b["queues"])),
                     *(pools_c.get(str(b["pool"]), {}).get(k, 0) for k in ("gprc", "gorc", "gptc", "gotc",
                                                                            "rx_dropped"))]
                    for b in r["bindings"]])
    port = c.get("port", {})
    pt = _table("NIC port counters", ["counter", "value"], [[k, v] for k, v in port.items()])
    qt = _table("queue counters (non-zero)", ["counter", "value"],
                [[k, v] for k, v in c.get("queues", {}).items() if v])
    return [binds, pt, qt]


def render_vfs(r: dict[str, Any]) -> list[Table]:
    pf = r["pf"]
    vfs = _table(f"PF {pf['bdf']} ({pf['profile']}, {pf['driver']}), {pf['num_vfs']} of {pf['totalvfs']} VFs, "
                 f"uplink {r.get('uplink')}: admin settings (ip link set PF vf N ...)",
                 ["vf", "port", "bdf", "MAC", "vlan", "qos", "spoofchk", "trust", "state", "max_tx_rate", "api",
                  "rx/tx on", "queues rx/tx"],
                 [[v["vf"], v.get("port"), v["bdf"], v["mac"], v["vlan"], v["qos"], _on(v["spoofchk"]),
                   _on(v["trust"]), v["link_state"], v["max_tx_rate"] or "", v["api"],
                   f"{_on(v['rx_enabled'])}/{_on(v['tx_enabled'])}",
                   f"{v['rss_queues']}/{v['tx_queues']} of {len(v['queues'])}"] for v in r["vfs"]])
    keys = ("rx_packets", "rx_bytes", "multicast", "broadcast", "rx_dropped", "tx_packets", "tx_bytes", "tx_dropped")
    stats = _table(f"VF counters (ip -s link show; anti-spoof drops are tx_dropped, all VFs' in ssvpc "
                   f"{r.get('ssvpc', 0)})", ["vf", "port", *keys],
                   [[v["vf"], v.get("port"), *(v["stats"][k] for k in keys)] for v in r["vfs"]])
    io = r.get("iommu", {}).get("counters", {})
    iommu = _table("IOMMU (every VF DMA)", ["counter", "value"], [[k, v] for k, v in io.items()])
    return [vfs, stats, iommu]


def _on(v: bool) -> str:
    return "on" if v else "off"


def render_graph(r: dict[str, Any], all_elements: bool = False) -> list[Table]:
    d = r if all_elements else collapse_idle(r)

    def detail(e: dict[str, Any]) -> str:
        if e["kind"] == "collapsed":
            return f"{e['count']} idle: {e['members'][0]} ... {e['members'][-1]}"
        if e["kind"] == "queue":
            return f"{e.get('scheduler')}, backlog {e.get('backlog_packets', 0)} pkts {e.get('backlog_bytes', 0)} B"
        if "tx_rings" in e:
            return f"{e['tx_rings']} TX rings ({e.get('arbitration')}), backlog {e.get('backlog_packets', 0)}"
        return ""
    els = _table("elements" + ("" if all_elements else " (idle ones folded; --all lists each)"),
                 ["element", "class", "kind", "part of", "detail"],
                 [[e["name"], e["class"], e["kind"], e.get("parent"), detail(e)] for e in d["elements"]])
    links = _table("links", ["from", "to", "packets", "bytes"],
                   [[f"{l['src']}[{l['output']}]", f"{l['dst']}[{l['input']}]", l["packets"], l["bytes"]]
                    for l in d["links"]])
    ports = _table("graph ports", ["port", "no", "enters", "leaves from", "rx_packets", "tx_packets"],
                   [[p["name"], p["number"], f"{p['entry']['element']}[{p['entry']['input']}]",
                     ", ".join(f"{g['element']}[{g['output']}]" for g in p["egress"]),
                     p["counters"]["rx_packets"], p["counters"]["tx_packets"]] for p in d["ports"]])
    return [els, links, ports]


JSON_HELP = "print the result as JSON (what the control socket returns) instead of tables"
# The port settings `set-port` changes: those declared to change at run time (vswitch/port_config.py),
# and state=up.
SET_PORT_KEYS = (*RUNTIME_SETTINGS, *(f"{k}.PARAM" for k in QDISC_KEYS), "state")


def _set_port_key_help(key: str) -> str:
    if key == "state":
        return "up: re-open a down port (an attach port attaches again)"
    if key == "qdisc.PARAM":
        return ("VALUE: one parameter of the qdisc, in tc's words and units (qdisc=tbf qdisc.rate=10mbit "
                "qdisc.burst=10kb qdisc.latency=50ms); without qdisc=KIND it changes the port's qdisc; "
                "none: back to its default; docs/policies.md lists each kind's")
    if key.endswith(".PARAM"):
        k = key.removesuffix(".PARAM")
        return f"VALUE: one parameter of {k}, as qdisc.PARAM is of qdisc ({k}=fq_codel {k}.target=2ms)"
    s = PORT_SETTINGS[key]
    kind = "true/false" if bool in s.types else "|".join(map(str, s.choices)) if s.choices else s.metavar or s.kind()
    return (f"{kind}: {s.help}" + ("" if s.default is None or "default" in s.help else f" (default {s.default_text()})")
            + ("; none clears it" if s.optional else ""))


def _add_port_option(ap: argparse.ArgumentParser, s: Setting) -> None:
    """A setting as an add-port argument: the required ones positional, a boolean a --flag (or
    --no-flag when on by default), the rest --key VALUE, parsed as `set-port` parses it."""
    text = s.help.replace("%", "%%")              # argparse formats help with %
    if s.required:
        ap.add_argument(s.name, type=_from_text(s), help=text)
        return
    flag = s.option or "--" + s.name.replace("_", "-")
    if bool in s.types:
        if s.default:
            ap.add_argument(f"--no-{flag[2:]}", dest=s.name, action="store_false", default=None,
                            help=f"turn off: {text}")
        else:
            ap.add_argument(flag, dest=s.name, action="store_true", default=None, help=text)
        return
    if s.default is not None and "default" not in text:
        text += f" (default {s.default_text()})"
    ap.add_argument(flag, dest=s.name, type=_from_text(s), choices=s.choices or None, metavar=s.metavar,
                    help=text)


def _from_text(s: Setting) -> Any:
    def parse(text: str) -> Any:
        try:
            return s.from_text(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = s.name                     # argparse names the type in some errors
    return parse


def _commands(parser: argparse.ArgumentParser, dest: str) -> argparse._SubParsersAction:
    """Subcommands under ``parser``; a missing one is reported by `parse_args` naming the choices."""
    return parser.add_subparsers(dest=dest, metavar="COMMAND", title="commands")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vswitchctl", description="control a running vswitchd over its socket")
    ap.add_argument("--socket", default=DEFAULT_SOCKET, help=f"control socket (default {DEFAULT_SOCKET})")
    sub = _commands(ap, "cmd")

    def command(parent: argparse._SubParsersAction, name: str, text: str,
                description: str | None = None, json: bool = False, epilog: str | None = None
                ) -> argparse.ArgumentParser:
        description = description or text[0].upper() + text[1:] + "."
        if epilog:                         # laid out here: argparse would run its lines together
            p = parent.add_parser(name, help=text, description=textwrap.fill(description, 79), epilog=epilog,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        else:
            p = parent.add_parser(name, help=text, description=description)
        if json:
            p.add_argument("--json", action="store_true", help=JSON_HELP)
        return p

    command(sub, "show", "bridge, dataplane, ports and their state, mirrors", json=True)
    ap_add = command(sub, "add-port", "add a port",
                     "Add a port: a TAP device the daemon creates (in a namespace with --netns), or an "
                     "existing interface (--type attach). Without VLAN options the port carries every VLAN. "
                     "Each option is the config file's key of the same name (docs/config.md).")
    for s in PORT_SETTINGS.values():
        if s.name not in CONFIG_FILE_ONLY:
            _add_port_option(ap_add, s)

    dp = command(sub, "del-port", "remove a port (its TAP is deleted, its FDB entries flushed)")
    dp.add_argument("name", help="the port")
    sp = command(sub, "set-port", "change port settings: key=value ... (tag=none clears)",
                 "Change a port's settings at run time; the config file is written back. Keys: "
                 + ", ".join(SET_PORT_KEYS) + " (as in the config file, docs/config.md). A value of none "
                 "clears an optional setting (tag=none); state=up re-opens a down port. "
                 + ", ".join(k for k, s in PORT_SETTINGS.items() if not s.runtime and k not in CONFIG_FILE_ONLY)
                 + " cannot change: delete the port and add it again; "
                 + ", ".join(CONFIG_FILE_ONLY) + " is set in the config file only (restart the daemon).",
                 epilog="keys:\n" + "\n".join(
                     textwrap.fill(_set_port_key_help(k), 79, initial_indent=f"  {k:17} ", subsequent_indent=" " * 20)
                     for k in SET_PORT_KEYS))
    sp.add_argument("name", help="the port")
    sp.add_argument("settings", nargs="+", metavar="key=value",
                    help="one setting each: " + ", ".join(SET_PORT_KEYS))

    fdb = _commands(command(sub, "fdb", "the MAC table: show, flush, stats, moves, static entries"), "fdb_cmd")
    f_show = command(fdb, "show", "entries as OVS fdb/show: port, VLAN, MAC, age", json=True)
    f_show.add_argument("--vlan", type=int, metavar="VID", help="only this VLAN")
    f_flush = command(fdb, "flush", "remove learned entries (static ones stay)")
    f_flush.add_argument("--port", help="only those learned on this port")
    f_flush.add_argument("--vlan", type=int, metavar="VID", help="only those in this VLAN")
    command(fdb, "stats", "as OVS fdb/stats-show: entries now and at most, static, learned, expired, "
                          "evicted, moved, damped, refused", json=True)
    command(fdb, "moves", "the last MAC moves between ports: MAC, VLAN, from, to, time, damped", json=True)
    f_add = command(fdb, "add", "add a static entry (kept in the config file)")
    f_add.add_argument("mac", help="a unicast MAC, e.g. 02:00:00:00:00:01")
    f_add.add_argument("port", help="the port it is reached through")
    f_add.add_argument("--vlan", type=int, default=0, metavar="VID", help="its VLAN (default 0: untagged)")
    f_del = command(fdb, "del", "delete an entry (static or learned)")
    f_del.add_argument("mac", help="the MAC")
    f_del.add_argument("--vlan", type=int, default=0, metavar="VID", help="its VLAN (default 0: untagged)")

    c = command(sub, "counters", "port counters (kernel names) and the switch's counters and drop reasons",
                json=True)
    c.add_argument("--port", help="only this port's counters")
    command(sub, "perf-show", "per-stage ns/frame, frames per batch, wake-ups (as OVS pmd-perf-show)", json=True)
    gr = command(sub, "graph", "the dataplane graph: elements, links and ports, as tables, JSON or Graphviz DOT",
                 "The dataplane graph as the daemon holds it: its elements (class, kind, the composite "
                 "they are part of, a queue's backlog), the links between them with their packet counts, "
                 "and the graph ports (the element input each enters, the element outputs that feed its "
                 "transmit). --dot prints it as Graphviz DOT (vswitchctl graph --dot | dot -Tpng -o "
                 "graph.png): the emulated NIC is a cluster of its parts. Idle queues (an 82599 has 128) "
                 "are folded into one node unless --all.", json=True)
    gr.add_argument("--dot", action="store_true", help="print Graphviz DOT text instead of tables")
    gr.add_argument("--all", action="store_true",
                    help="draw or list every element, idle queues too (--json always has every element)")

    qd = _commands(command(sub, "qdisc", "the ports' egress qdiscs, NIC queue policies and ingress policing"),
                   "qdisc_cmd")
    q_show = command(qd, "show", "each port's qdisc with tc -s qdisc's statistics, and its ingress policing",
                     "Each port's egress qdisc (set-port P qdisc=KIND ..., or [port.qdisc] in the config) as "
                     "`tc -s qdisc show` prints one: kind and parameters, Sent bytes and packets, dropped, "
                     "overlimits, requeues, backlog, the kind's own figures (fq_codel's maxpacket, "
                     "drop_overlimit, new_flow_count, ecn_mark, new_flows_len, old_flows_len) and, for a "
                     "class-based qdisc, each class's; then the policies on a guest's NIC queues "
                     "(rx_qdisc on each RX queue of its pool or VF, tx_qdisc on its TX queue) with the same "
                     "figures; then the port's ingress policer and storm control with their counts. A port "
                     "without a qdisc is noqueue.", json=True)
    q_show.add_argument("--port", help="only this port")

    nic = _commands(command(sub, "nic", "the emulated NIC ([nic] in the config)"), "nic_cmd")
    command(nic, "show", "pools, filters, rings and counters", json=True)

    vf = _commands(command(sub, "vf", "SR-IOV virtual functions ([nic] mode = sriov): show, set, mailbox"),
                   "vf_cmd")
    command(vf, "show", "the VFs: guest port, admin settings (ip link's), counters; the IOMMU", json=True)
    v_set = command(vf, "set", "change a VF's admin settings: the words of `ip link set PF vf N ...`",
                    "Change VF N's admin settings with the words of `ip link set PF vf N ...`: mac MAC, vlan "
                    "VID [qos PCP], max_tx_rate MBPS, min_tx_rate MBPS, spoofchk on|off, trust on|off, state "
                    "auto|enable|disable. The PF driver checks each as ixgbe does and a refusal (with the "
                    "kernel's error) changes nothing; the settings are the guest port's (vf_vlan, ...) and "
                    "are saved in the config file.")
    v_set.add_argument("pf", help="the PF: the NIC's name (nic0) or its uplink port")
    v_set.add_argument("n", type=int, metavar="N", help="the VF (0-based, as ip link)")
    v_set.add_argument("words", nargs="+", metavar="WORD", help="mac|vlan|qos|max_tx_rate|min_tx_rate|spoofchk|"
                                                               "trust|state and their values")
    v_mbx = command(vf, "mailbox", "the last PF-VF mailbox messages of a VF, decoded", json=True)
    v_mbx.add_argument("n", type=int, metavar="N", help="the VF (0-based)")

    mir = _commands(command(sub, "mirror", "port mirroring (SPAN) to a port or a pcap file"), "mirror_cmd")
    m_add = command(mir, "add", "add a mirror: copies of the selected frames to a port or a pcap file",
                    "Add a mirror: copies of the frames received on (--select-src-port) or sent to "
                    "(--select-dst-port) the given ports, or of all frames (--select-all), written to a port "
                    "or to a pcap file in the daemon's mirror directory. Copies are plain frames: GSO "
                    "super-frames are segmented and their checksums completed.")
    m_add.add_argument("name", help="the mirror's name")
    m_add.add_argument("--select-src-port", action="append", default=[], metavar="PORT",
                       help="mirror frames received on PORT (repeat for more ports; default none)")
    m_add.add_argument("--select-dst-port", action="append", default=[], metavar="PORT",
                       help="mirror frames sent to PORT (repeat for more ports; default none)")
    m_add.add_argument("--select-all", action="store_true", help="mirror every frame on every port")
    out = m_add.add_mutually_exclusive_group(required=True)
    out.add_argument("--output-port", metavar="PORT", help="send the copies out of PORT (not a selected port)")
    out.add_argument("--output-pcap", metavar="FILE",
                     help="write a pcap file (tcpdump -r, Wireshark) named FILE in the daemon's mirror directory "
                          "(vswitchd --mirror-dir, default /var/lib/vswitch/mirrors); an existing file is refused "
                          "unless --append or --replace")
    existing = m_add.add_mutually_exclusive_group()
    existing.add_argument("--append", action="store_true", help="--output-pcap: add to the file if it exists")
    existing.add_argument("--replace", action="store_true", help="--output-pcap: empty the file if it exists")
    command(mir, "del", "remove a mirror (its pcap file stays)").add_argument("name", help="the mirror")
    command(mir, "show", "the mirrors: selection, output, tx_packets, tx_bytes, tx_dropped", json=True)
    return ap


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """`build_parser`'s parse, with a missing (sub)command refused by naming the choices."""
    ap = build_parser()
    args = ap.parse_args(argv)
    parser, dest = ap, "cmd"
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None:
            return args
        chosen = getattr(args, dest, None)
        if chosen is None:
            parser.error(f"choose a command: {', '.join(sub.choices)} ({parser.prog} --help says what each does)")
        parser = sub.choices[chosen]
        dest = f"{chosen.replace('-', '_')}_cmd"


def run(args: argparse.Namespace) -> tuple[Any, list[Table] | None]:
    cl = Client(args.socket)
    cmd = args.cmd
    if cmd == "show":
        r = cl.call("show")
        return r, render_show(r)
    if cmd == "add-port":
        port = {k: getattr(args, k) for k in PORT_SETTINGS if getattr(args, k, None) is not None}
        r = cl.call("add-port", port=port)
        return r, None
    if cmd == "del-port":
        return cl.call("del-port", name=args.name), None
    if cmd == "set-port":
        return cl.call("set-port", name=args.name, changes=_kv_pairs(args.settings)), None
    if cmd == "fdb":
        sc = args.fdb_cmd
        if sc == "show":
            r = cl.call("fdb/show", vlan=args.vlan)
            return r, [fdb_table(r)]
        if sc == "flush":
            return cl.call("fdb/flush", port=args.port, vlan=args.vlan), None
        if sc == "stats":
            r = cl.call("fdb/stats-show")
            return r, [_table("FDB statistics", ["statistic", "value"], [[k, v] for k, v in r.items()])]
        if sc == "moves":
            r = cl.call("fdb/moves-show")
            return r, [_table("MAC moves (oldest first)", ["MAC", "VLAN", "from", "to", "time s", "damped"],
                              [[m["mac"], m["vlan"], m["from"], m["to"], f"{m['time_ns'] / 1e9:.3f}", m["damped"]]
                               for m in r])]
        if sc == "add":
            return cl.call("fdb/add", mac=args.mac, port=args.port, vlan=args.vlan), None
        return cl.call("fdb/del", mac=args.mac, vlan=args.vlan), None
    if cmd == "counters":
        r = cl.call("counters", port=args.port)
        return r, render_counters(r)
    if cmd == "perf-show":
        r = cl.call("perf-show")
        return r, render_perf(r)
    if cmd == "graph":
        if args.dot and args.json:
            raise ControlError("give --dot or --json, not both")
        r = cl.call("graph/show")
        return r, render_graph(r, args.all)
    if cmd == "qdisc":
        return cl.call("qdisc/show", port=args.port), []
    if cmd == "nic":
        r = cl.call("nic/show")
        return r, render_nic(r)
    if cmd == "vf":
        sc = args.vf_cmd
        if sc == "show":
            r = cl.call("vf/show")
            return r, render_vfs(r)
        if sc == "set":
            return cl.call("vf/set", pf=args.pf, vf=args.n, words=args.words), None
        r = cl.call("vf/mailbox", vf=args.n)
        return r, [_table(f"VF {r['vf']} mailbox (oldest first)", ["message"], [[m] for m in r["messages"]])]
    if cmd == "mirror":
        sc = args.mirror_cmd
        if sc == "add":
            return cl.call("mirror/add", name=args.name, select_src=args.select_src_port,
                           select_dst=args.select_dst_port, select_all=args.select_all,
                           output_port=args.output_port, output_pcap=args.output_pcap,
                           append=args.append, replace=args.replace), None
        if sc == "del":
            return cl.call("mirror/del", name=args.name), None
        r = cl.call("mirror/show")
        return r, [render_mirrors(r)]
    raise ControlError(f"unknown command {cmd}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result, tables = run(args)
    except ControlError as e:
        print(f"vswitchctl: {e}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2))
        return 0
    if getattr(args, "dot", False):
        print(to_dot(result, all_elements=args.all), end="")
        return 0
    if args.cmd == "qdisc":                  # tc's own layout, not tables
        print(tc_text(result), end="")
        return 0
    if tables is None:                       # a change: silent on success, as ovs-vsctl
        if isinstance(result, dict) and result.get("state") not in (None, "up"):
            print(f"vswitchctl: note: port {result['name']} is {result['state']}"
                  + (f": {result['error']}" if result.get("error") else ""), file=sys.stderr)
        return 0
    print_tables(*tables, console=make_console())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
