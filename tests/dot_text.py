"""DOT text as Graphviz reads it, for the tests of `vswitch.graph_dot` (unit and netns).

`parse_dot` understands the DOT that `to_dot` writes (one statement or one
block opening per line, nodes declared with a label first), which is enough to
check what a reader of the picture relies on.
"""

from __future__ import annotations

import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def parse_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str]], dict[str, str | None]]:
    """(node id -> label, edges, node id -> the cluster it is declared in), from to_dot's text;
    fails unless braces and brackets balance outside strings and every edge's ends are nodes."""
    bare = _STRING.sub('""', text)
    depth = 0
    for ch in bare:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, "a } closes nothing"
    assert depth == 0, "unbalanced braces"
    assert bare.count("[") == bare.count("]")
    labels: dict[str, str] = {}
    cluster: dict[str, str | None] = {}
    edges: list[tuple[str, str]] = []
    stack: list[str] = []
    for raw in text.splitlines():
        line = _STRING.sub(lambda m: m.group(0).replace(";", ","), raw)        # no ; inside strings
        opened = re.match(r"\s*(?:digraph \w+|subgraph (cluster_\w+)) \{$", line)
        if opened:
            stack.append(opened.group(1) or "")
            continue
        if line.strip() == "}":
            stack.pop()
            continue
        for stmt in line.split(";"):
            edge = re.match(r"\s*(\w+) -> (\w+)", stmt)
            node = re.match(r"\s*(\w+) \[label=(\"(?:[^\"\\]|\\.)*\")", stmt)
            if edge:
                edges.append((edge.group(1), edge.group(2)))
            elif node:
                labels[node.group(1)] = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1),
                                               node.group(2)[1:-1])
                cluster[node.group(1)] = stack[-1] or None
    assert stack == [], "a block left open"
    undeclared = {e for edge in edges for e in edge if e not in labels}
    assert not undeclared, f"edges to undeclared nodes {undeclared}"
    return labels, edges, cluster


def node_of(labels: dict[str, str], start: str) -> str:
    found = [n for n, text in labels.items() if text.startswith(start)]
    assert len(found) == 1, (start, found)
    return found[0]
