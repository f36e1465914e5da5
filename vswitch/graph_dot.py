"""Pictures of the dataplane graph: `Graph.describe()`'s plain data as Graphviz DOT text.

``vswitchctl graph --dot`` prints what `to_dot` makes of the running graph;
``make docs-graphs`` renders the pictures in docs/ with the same function.
Nothing here does I/O: the callers write the text where they want it.

The picture reads left to right, as a frame travels: each graph port is two
nodes, where its frames enter (``rx``, on the left) and where they leave
(``tx``, on the right).  Between them:

* elements are boxes (queues shaded), labelled with their name, class and
  what `Element.describe` adds (a queue's backlog);
* element-to-element links are solid edges with their packet counts;
* a composite element (the emulated NIC) is a cluster holding its parts, with
  a small node for each of its own ports that something outside uses; the
  paths inside it that are calls rather than links (`Element.flows`) are
  dashed edges;
* taps (a mirror's view of a port) are dotted edges; outputs bound to a
  driver's sink (a mirror's pcap file) end in a note.

`collapse_idle` folds the elements that say they are idle (an 82599 has 128
RX queues; a few are in use) into one node per composite, "N idle queues";
`to_dot` does it unless told ``all_elements=True``.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["collapse_idle", "to_dot"]

Desc = dict[str, Any]


def collapse_idle(desc: Desc) -> Desc:
    """A copy of ``desc`` in which the idle elements of each parent (or of the top level) are
    one element of kind ``collapsed`` (``count``, ``members``); links and flows to and from
    them are merged (their packet and byte counts summed)."""
    out = copy.deepcopy(desc)
    groups: dict[str | None, list[Desc]] = {}
    for el in out["elements"]:
        if el.get("idle"):
            groups.setdefault(el.get("parent"), []).append(el)
    rename: dict[str, str] = {}
    kept = [el for el in out["elements"] if not el.get("idle")]
    for parent, members in groups.items():
        if len(members) < 2:            # one idle element is drawn as itself
            kept.extend(members)
            continue
        kinds = {m["kind"] for m in members}
        name = f"{parent}.idle" if parent else "idle"
        kept.append({"name": name, "class": "/".join(sorted({m["class"] for m in members})),
                     "kind": "collapsed", "parent": parent, "count": len(members),
                     "of": kinds.pop() if len(kinds) == 1 else "element",
                     "members": [m["name"] for m in members], "inputs": [], "outputs": []})
        rename.update((m["name"], name) for m in members)
        for el in kept:
            if el.get("parts"):
                el["parts"] = list(dict.fromkeys(rename.get(p, p) for p in el["parts"]))
    order = {el["name"]: i for i, el in enumerate(out["elements"])}
    kept.sort(key=lambda el: order.get(el["name"], order.get(el["members"][0], 0) if "members" in el else 0))
    out["elements"] = kept
    links: dict[tuple[str, str, str, str], Desc] = {}
    for l in out["links"]:
        src, dst = rename.get(l["src"], l["src"]), rename.get(l["dst"], l["dst"])
        key = (src, l["output"] if src == l["src"] else "out", dst, l["input"] if dst == l["dst"] else "in")
        if key in links:
            links[key]["packets"] += l["packets"]
            links[key]["bytes"] += l["bytes"]
        else:
            links[key] = {**l, "src": src, "output": key[1], "dst": dst, "input": key[3]}
    out["links"] = list(links.values())
    flows: dict[str, Desc] = {}
    for f in out["flows"]:
        g = {**f, "src": {**f["src"], "element": rename.get(f["src"]["element"], f["src"]["element"])},
             "dst": {**f["dst"], "element": rename.get(f["dst"]["element"], f["dst"]["element"])}}
        flows.setdefault(repr((g["src"], g["dst"], g["what"])), g)
    out["flows"] = list(flows.values())
    for part in ("taps", "sinks"):
        out[part] = [{**t, "element": rename.get(t["element"], t["element"])} if t.get("element") else t
                    for t in out[part]]
    for p in out["ports"]:
        p["entry"] = {**p["entry"], "element": rename.get(p["entry"]["element"], p["entry"]["element"])}
        p["egress"] = [{**e, "element": rename.get(e["element"], e["element"])} for e in p["egress"]]
    return out


def _q(text: str) -> str:
    """A DOT string: quotes and backslashes escaped, lines joined by DOT's centred line break."""
    return '"' + "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in text.split("\n")) + '"'


def _attrs(**kw: Any) -> str:
    return "[" + ", ".join(f"{k}={v}" for k, v in kw.items() if v is not None) + "]"


def _count(n: int, word: str = "pkt") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _label(el: Desc) -> str:
    parent = el.get("parent")
    name = el["name"][len(parent) + 1:] if parent and el["name"].startswith(parent + ".") else el["name"]
    kind = el["kind"]
    if kind == "collapsed":
        what = "queues" if el["of"] == "queue" else "elements"
        return f"{el['count']} idle {what}\n({el['class']})"
    if kind == "queue":            # the class is in the text around the picture: queues are many
        where = f" (pool {el['pool']})" if "pool" in el else ""
        return f"{name}{where}\n{el.get('scheduler', 'fifo')}, backlog {el.get('backlog_packets', 0)}"
    lines = [name if name.lower() == el["class"].lower() else f"{name}: {el['class']}"]
    if "tx_rings" in el:
        lines.append(f"{el['tx_rings']} TX rings ({el.get('arbitration') or 'rr'}), "
                     f"backlog {el.get('backlog_packets', 0)}")
    return "\n".join(lines)


def _cluster_label(el: Desc) -> str:
    bits = [el["class"]]
    if "profile" in el:
        bits.append(el["profile"])
    if "vt" in el:
        bits.append(f"VT on, {el['pools']} pools" if el["vt"] else "VT off: one queue")
    if "queues" in el:
        bits.append(f"{el['queues']} RX queues")
    return f"{el['name']} ({', '.join(bits)})"


def _port_name(name: str, default: str) -> str | None:
    return None if name == default else f"[{name}]"


def to_dot(desc: Desc, all_elements: bool = False, title: str | None = None) -> str:
    """DOT text for a graph description (`Graph.describe()`); idle elements collapsed unless
    ``all_elements``."""
    d = desc if all_elements else collapse_idle(desc)
    els = {el["name"]: el for el in d["elements"]}
    ids: dict[str, str] = {name: f"e{i}" for i, name in enumerate(els)}
    composites = {name for name, el in els.items() if el["kind"] == "composite"}

    # The ports of composites that something outside uses: a node each, inside the cluster.
    used: dict[tuple[str, str, str], str] = {}

    def cport(element: str, side: str, port: str) -> str:
        key = (element, side, port)
        if key not in used:
            used[key] = f"c{len(used)}"
        return used[key]

    def end(e: Desc, side: str) -> str | None:
        """The node id of a link/flow end: a composite's own port, or an element."""
        name = e["element"]
        if name not in els:
            return None
        port = e.get("input" if side == "in" else "output")
        if name in composites:      # drawn as a cluster: only its ports are nodes
            return cport(name, side, port) if port is not None else None
        return ids[name]

    edges: list[str] = []
    for l in d["links"]:
        a = end({"element": l["src"], "output": l["output"]}, "out")
        b = end({"element": l["dst"], "input": l["input"]}, "in")
        if a is None or b is None:
            continue
        ports = [p for p in (None if l["src"] in composites else _port_name(l["output"], "out"),
                             None if l["dst"] in composites else _port_name(l["input"], "in")) if p]
        label = " → ".join(ports) + ("\n" if ports else "") + _count(l["packets"])
        edges.append(f"{a} -> {b} {_attrs(label=_q(label))};")
    for p in d["ports"]:
        n = p["number"]
        e = p["entry"]
        b = end({"element": e["element"], "input": e["input"]}, "in")
        if b is not None:
            inp = None if e["element"] in composites else _port_name(e["input"], "in")
            edges.append(f"r{n} -> {b} {_attrs(label=_q(inp) if inp else None, penwidth='1.5')};")
        for g in p["egress"]:
            a = end({"element": g["element"], "output": g["output"]}, "out")
            if a is not None:
                out = None if g["element"] in composites else _port_name(g["output"], "out")
                edges.append(f"{a} -> t{n} {_attrs(label=_q(out) if out else None, penwidth='1.5')};")
    for i, s in enumerate(d["sinks"]):
        a = end({"element": s["element"], "output": s["output"]}, "out")
        if a is not None:
            edges.append(f"s{i} {_attrs(label=_q('driver sink (pcap file)'), shape='note')};")
            edges.append(f"{a} -> s{i};")
    numbers = [p["number"] for p in d["ports"]]
    for t in d["taps"]:
        if t.get("element") not in ids:
            continue
        src = "r" if t["direction"] == "rx" else "t"
        for n in numbers if t["port"] is None else [t["port"]]:
            if n in numbers:
                edges.append(f"{src}{n} -> {ids[t['element']]} "
                             f"{_attrs(label=_q('tap ' + t['direction']), style='dotted', constraint='false')};")
    # Flows inside composites: only between ends that are drawn (ports something outside uses).
    seen_flows = set()
    labelled = set()           # a path drawn to many queues is labelled once
    for f in d["flows"]:
        ends = []
        for e in (f["src"], f["dst"]):
            if e["element"] in composites and ("input" in e or "output" in e):
                key = (e["element"], "in" if "input" in e else "out", e.get("input", e.get("output")))
                ends.append(used.get(key))
            else:
                ends.append(None if e["element"] in composites else ids.get(e["element"]))
        a, b = ends
        if a is None or b is None or (a, b) in seen_flows:
            continue
        seen_flows.add((a, b))
        what = None if (a, f["what"]) in labelled else _q(f["what"])
        labelled.add((a, f["what"]))
        edges.append(f"{a} -> {b} {_attrs(label=what, style='dashed', color='gray40', fontcolor='gray30')};")

    lines = ["digraph vswitch {",
             "  rankdir=LR; newrank=true; nodesep=0.25; ranksep=0.45;",
             '  node [fontname="Helvetica", fontsize=10, shape=box, style="rounded,filled", fillcolor="white"];',
             '  edge [fontname="Helvetica", fontsize=9];']
    if title:
        lines.append(f"  labelloc=t; fontname=\"Helvetica\"; fontsize=12; label={_q(title)};")
    rx, tx = [], []
    for p in d["ports"]:
        c, n = p["counters"], p["number"]
        head = f"{p['name']} (port {n})"
        dropped = f", {c['tx_dropped']} dropped" if c.get("tx_dropped") else ""
        rx_label = _q(f"{head} rx\n{_count(c['rx_packets'])}")
        tx_label = _q(f"{head} tx\n{_count(c['tx_packets'])}{dropped}")
        rx.append(f"r{n} " + _attrs(label=rx_label, shape="cds", fillcolor=_q("#dbe8f7")) + ";")
        tx.append(f"t{n} " + _attrs(label=tx_label, shape="cds", fillcolor=_q("#dcf0dc")) + ";")
    lines.append("  { rank=source; " + " ".join(rx) + " }")
    lines.append("  { rank=sink; " + " ".join(tx) + " }")

    def node(el: Desc) -> str:
        kind = el["kind"]
        queue = kind == "queue" or (kind == "collapsed" and el["of"] == "queue")
        fill = ("#fffaea" if queue else "#f7f7f7") if kind == "collapsed" else "#fff2cc" if queue else "white"
        return f"{ids[el['name']]} " + _attrs(label=_q(_label(el)), fillcolor=_q(fill),
                                              style=_q("rounded,dashed,filled") if kind == "collapsed" else None) + ";"

    def emit(name: str, indent: str) -> None:
        el = els[name]
        if el["kind"] != "composite":
            lines.append(indent + node(el))
            return
        lines.append(f"{indent}subgraph cluster_{ids[name]} {{")
        lines.append(f"{indent}  label={_q(_cluster_label(el))}; style=\"rounded,filled\"; fillcolor=\"#f2f2f2\";"
                     " fontname=\"Helvetica\"; fontsize=11;")
        for (owner, side, port), cid in used.items():
            if owner == name:
                shape = "rarrow" if side == "in" else "larrow"
                lines.append(f"{indent}  {cid} " + _attrs(label=_q(f"{side} {port}"), shape=shape, style="filled",
                                                          fillcolor=_q("#e8e8e8"), fontsize="9", height="0.3") + ";")
        for part in el.get("parts", []):
            if part in els:
                emit(part, indent + "  ")
        lines.append(indent + "}")

    for name, el in els.items():
        if el.get("parent") is None:
            emit(name, "  ")
    lines += ["  " + e for e in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"
