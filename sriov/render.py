"""``ip link`` for VFs: iproute2's words in (``parse_vf_words``), its text out (``render_vfs``).

``render_vfs(pf, name, stats)`` prints the VF lines of ``ip [-s] link show PF`` as
iproute2 (print_vfinfo, print_vf_stats64) does::

    vf 0     link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff, vlan 10, qos 3, tx rate 500 (Mbps), \
max_tx_rate 500Mbps, spoof checking on, link-state auto, trust off, query_rss off
    RX: bytes  packets  mcast   bcast   dropped
         12800      200       0       1        0
    TX: bytes  packets   dropped
          6400      100        3

(vlan and qos only when set; the deprecated ``tx rate`` and ``max_tx_rate`` only with a
rate; ``min_tx_rate`` only when non-zero, as iproute2.)

``parse_vf_words(words)`` reads the words after ``ip link set PF vf N`` (mac, vlan
[qos] [proto], rate, max_tx_rate, min_tx_rate, spoofchk, query_rss, state, trust) with
iproute2's checks and messages (EINVAL).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from sriov.errors import SriovError
from vswitch.core.frame import parse_mac

if TYPE_CHECKING:
    from sriov.physical_function import SriovPf

__all__ = ["render_vfs", "vf_line", "stats_lines", "parse_vf_words"]


def vf_line(info: dict[str, Any]) -> str:
    s = f"    vf {info['vf']}     link/ether {info['mac']} brd ff:ff:ff:ff:ff:ff"
    if info["vlan"]:
        s += f", vlan {info['vlan']}"
    if info["qos"]:
        s += f", qos {info['qos']}"
    if info.get("vlan_proto", "802.1Q") != "802.1Q":
        s += f", vlan protocol {info['vlan_proto']}"
    if info["max_tx_rate"]:
        s += f", tx rate {info['max_tx_rate']} (Mbps), max_tx_rate {info['max_tx_rate']}Mbps"
    if info["min_tx_rate"]:
        s += f", min_tx_rate {info['min_tx_rate']}Mbps"
    s += f", spoof checking {'on' if info['spoofchk'] else 'off'}, link-state {info['link_state']}"
    s += f", trust {'on' if info['trust'] else 'off'}, query_rss {'on' if info['query_rss'] else 'off'}"
    return s


def stats_lines(st: dict[str, int]) -> list[str]:
    return ["    RX: bytes  packets  mcast   bcast   dropped",
            f"    {st['rx_bytes']:>10} {st['rx_packets']:>8} {st['multicast']:>7} {st['broadcast']:>7} "
            f"{st['rx_dropped']:>8}",
            "    TX: bytes  packets   dropped",
            f"    {st['tx_bytes']:>10} {st['tx_packets']:>8} {st['tx_dropped']:>8}"]


def render_vfs(pf: SriovPf, name: str = "eth0", stats: bool = False) -> str:
    out = []
    for vf in pf.vfs:
        out.append(vf_line(vf.vf_info()))
        if stats:
            out.extend(stats_lines(vf.stats()))
    return "\n".join(out) + ("\n" if out else "")


def _invarg(msg: str, arg: str) -> SriovError:
    return SriovError(f'Error: argument "{arg}" is wrong: {msg}', errno.EINVAL)


def _unsigned(word: str, what: str) -> int:
    try:
        v = int(word, 0)
    except ValueError:
        raise _invarg(f'Invalid "{what}" value', word) from None
    if v < 0:
        raise _invarg(f'Invalid "{what}" value', word)
    return v


def _on_off(key: str, word: str) -> bool:
    if word == "on":
        return True
    if word == "off":
        return False
    raise SriovError(f'Error: argument of "{key}" must be "on" or "off", not "{word}"', errno.EINVAL)


def parse_vf_words(words: list[str]) -> dict[str, Any]:
    """iplink_parse_vf: the options after ``vf N`` as a dict (keys as the option words)."""
    opts: dict[str, Any] = {}
    i = 0

    def arg(key: str) -> str:
        nonlocal i
        i += 1
        if i >= len(words):
            raise SriovError(f'Error: argument "{key}" is wrong: missing value', errno.EINVAL)
        return words[i]

    while i < len(words):
        w = words[i]
        if w == "mac":
            a = arg(w)
            try:
                opts["mac"] = parse_mac(a)
            except ValueError:
                raise SriovError(f'"{a}" is invalid lladdr.', errno.EINVAL) from None
        elif w == "vlan":
            opts["vlan"] = _unsigned(arg(w), "vlan")
            if i + 1 < len(words) and words[i + 1] == "qos":
                i += 1
                opts["qos"] = _unsigned(arg("qos"), "qos")
            if i + 1 < len(words) and words[i + 1] == "proto":
                i += 1
                p = arg("proto")
                if p not in ("802.1Q", "802.1q", "802.1ad", "802.1AD"):
                    raise SriovError(f'Error: argument "{p}" is wrong: protocol is invalid', errno.EINVAL)
                opts["proto"] = "802.1Q" if p.lower() == "802.1q" else "802.1ad"
        elif w in ("rate", "max_tx_rate"):
            opts["max_tx_rate"] = _unsigned(arg(w), "max tx rate")
        elif w == "min_tx_rate":
            opts["min_tx_rate"] = _unsigned(arg(w), "min tx rate")
        elif w in ("spoofchk", "query_rss", "trust"):
            opts[w] = _on_off(w, arg(w))
        elif w == "state":
            a = arg(w)
            if a not in ("auto", "enable", "disable"):
                raise _invarg('Invalid "state" value', a)
            opts["state"] = a
        elif w == "qos":
            raise SriovError('Error: argument "qos" is wrong: qos comes after "vlan VLANID"', errno.EINVAL)
        else:
            raise SriovError(f'Error: unknown vf option "{w}" (mac, vlan, qos, proto, max_tx_rate, '
                             'min_tx_rate, spoofchk, query_rss, state, trust)', errno.EINVAL)
        i += 1
    if not opts:
        raise SriovError("Error: vf N needs a setting", errno.EINVAL)
    return opts
