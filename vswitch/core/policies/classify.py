"""Classifier: which class (or flow) of a scheduler a frame belongs to, by a key the user names.

Keys (every one read from the frame's annotations or by slicing its bytes):

``port``      ``Frame.in_port``, the switch port (a guest's TAP) it came in by
``pool``      ``Frame.pool``, the NIC pool (guest) the VMDq sorter put it in
``vlan``      the VLAN ID (the switch's classification, else a tag in the bytes, else 0)
``pcp``       the 802.1p priority, 0-7 (untagged: 0)
``dscp``      the IP DSCP, 0-63 (not IP: the default class)
``priority``  Linux's skb->priority: the PCP where tagged, else rt_tos2priority of the TOS
``flow``      a hash of the 5-tuple (`headers.flow_hash`), spread over the classes as Linux's
              ``reciprocal_scale`` does

The key's value becomes a class index in ``0 .. classes-1``: through ``map``
(value -> class) when one is given, values it does not list going to
``default``; without a map, ``value % classes`` (``flow``: the hash scaled).
A negative value (``dscp`` of a frame that is not IP) goes to ``default``.
"""

from __future__ import annotations

from typing import Any, Final

from mypy_extensions import i64

from vswitch.core.frame import Frame
from vswitch.core.policies.headers import dscp, flow_hash, linux_priority, vlan_id, vlan_pcp
from vswitch.core.policies.params import Param

__all__ = ["Classifier", "KEYS", "CLASSIFIER_PARAMS", "PRIO2BAND", "classifier_params", "classifier_from"]

KEYS: Final = ("port", "pool", "vlan", "pcp", "dscp", "priority", "flow")
_PORT, _POOL, _VLAN, _PCP, _DSCP, _PRIORITY, _FLOW = range(7)

# Linux's default priomap (sch_default_prio2band): skb->priority 0-15 -> band 0-2 (0 first).
PRIO2BAND: Final = (1, 2, 2, 2, 1, 2, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)


def classifier_params(key: str) -> tuple[Param, ...]:
    """The parameters that choose a class-based scheduler's classifier (default key ``key``)."""
    return (
        Param("classify", "choice", key, "what puts a frame in a class: " + ", ".join(KEYS), choices=KEYS),
        Param("map", "map", None, "key value -> class index (values not listed go to default_class); "
              "none: value modulo the number of classes"),
        Param("default_class", "int", 0, "the class of values the map does not list", range=(0, 65535)),
    )


CLASSIFIER_PARAMS: Final = classifier_params("port")


class Classifier:
    """``classify(frame)`` -> a class index in ``0 .. classes-1``; see the module docstring."""

    def __init__(self, key: str = "port", classes: int = 1, map: dict[int, int] | None = None,
                 default: int = 0) -> None:
        if key not in KEYS:
            raise ValueError(f"classify {key!r}: use one of {', '.join(KEYS)}")
        if classes < 1:
            raise ValueError(f"a classifier needs at least 1 class, got {classes}")
        if not 0 <= default < classes:
            raise ValueError(f"default_class {default}: must be a class, 0-{classes - 1}")
        if map is not None:
            for k, c in map.items():
                if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c < classes:
                    raise ValueError(f"map {k}:{c}: the class must be 0-{classes - 1}")
        self.key = key
        self.kind = KEYS.index(key)
        self.classes = classes
        self.map: dict[int, int] | None = dict(map) if map is not None else None
        self.default = default

    def value(self, frame: Frame) -> int:
        """The key's value for ``frame`` (before the map)."""
        k = self.kind
        if k == _PORT:
            return frame.in_port
        if k == _FLOW:
            return flow_hash(frame.data)
        if k == _POOL:
            return frame.pool
        if k == _PCP:
            return vlan_pcp(frame)
        if k == _DSCP:
            return dscp(frame.data)
        if k == _PRIORITY:
            return linux_priority(frame)
        return vlan_id(frame)

    def classify(self, frame: Frame) -> int:
        # The two common keys read inline (a call per frame is most of their cost interpreted).
        k = self.kind
        m = self.map
        if k == _FLOW:
            v = flow_hash(frame.data)
            if m is None:
                # i64: the product reaches 2**48, past what compiled code multiplies natively as int.
                h: i64 = v
                return h * self.classes >> 32
        elif k == _PORT:
            v = frame.in_port
        else:
            v = self.value(frame)
        if m is not None:
            return m.get(v, self.default)
        if v < 0:
            return self.default
        return v % self.classes

    def config(self) -> dict[str, object]:
        return {"classify": self.key, "map": dict(self.map) if self.map is not None else None,
                "default_class": self.default}


def classifier_from(p: dict[str, Any], classes: int) -> Classifier:
    """The classifier a class-based scheduler's parameters (`classifier_params`) describe."""
    m = p["map"]
    index: dict[int, int] | None = None
    if m is not None:
        index = {}
        for k, c in m.items():
            if not isinstance(c, int):
                raise ValueError(f"map {k}:{c}: classes are numbered 0-{classes - 1} here")
            index[k] = c
    return Classifier(p["classify"], classes, index, p["default_class"])
