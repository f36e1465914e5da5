"""802.1Q VLAN port modes, as Open vSwitch defines them (``vlan_mode``).

=================  =========================  ==============================
mode               untagged frames in         VLAN v leaves the port
=================  =========================  ==============================
access (tag=T)     VLAN T                     untagged (only T is carried)
trunk (trunks=L)   VLAN 0, if 0 is in L       tagged, except VLAN 0
native-tagged      VLAN T (T and L carried)   tagged, T included
native-untagged    VLAN T (T and L carried)   untagged for T, tagged others
=================  =========================  ==============================

An access port drops any frame tagged with a nonzero VID, even its own VLAN
(OVS's rule; the switch applies it when it pops the tag).  ``trunks`` empty
means every VLAN 0-4095.  A port with neither tag nor
trunks is a trunk of every VLAN (OVS's default), so an unconfigured switch
passes tagged frames through and keeps untagged ones untagged.  A native
port never carries VLAN 0, whatever ``trunks`` says (unless its native VLAN
is 0), as OVS forces: its untagged frames are its native VLAN, so VLAN 0 of
another port would merge into it.

A tag with VID 0 (a priority tag) classifies like an untagged frame; its PCP
is kept.  VLAN 0 leaves a port that carries it tagged (``priority_tagged``:
a trunk, or a native-tagged port whose native VLAN is 0) with the priority
tag it came with, and untagged if it came untagged or with a tag whose TCI
is zero (OVS omits a zero TCI).  Only TPID 0x8100 is a VLAN tag to this
switch, as for the Linux
bridge with ``vlan_protocol 802.1Q``: a frame whose outer TPID is 0x88a8
(802.1ad S-tag) or 0x9100 is an *untagged* frame of the port's untagged VLAN,
carried transparently with its S-tag inside the payload.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

MODES = ("access", "trunk", "native-tagged", "native-untagged")
ALL_VLANS = frozenset(range(4096))


def parse_vlan_list(text: str | Iterable[int]) -> frozenset[int]:
    """'10,20,30-39' (or an iterable of ints) to a set of VIDs; ValueError says which part is bad."""
    if not isinstance(text, str):
        vids = set()
        for v in text:
            vids.add(check_vid(v))
        return frozenset(vids)
    vids = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(f"bad VLAN list {text!r}: {part!r} is not a number or a range like 10-20") from None
        if a > b:
            raise ValueError(f"bad VLAN list {text!r}: range {part!r} runs backwards")
        for v in (a, b):
            check_vid(v)
        vids.update(range(a, b + 1))
    return frozenset(vids)


def check_vid(v: int) -> int:
    """A VLAN ID a port or an FDB entry may be configured with: 0-4094 (802.1Q reserves 4095)."""
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 4094:
        raise ValueError(f"bad VLAN {v!r}: a VLAN ID is an integer 0-4094 (4095 is reserved by 802.1Q)")
    return v


@dataclass(frozen=True)
class PortVlan:
    """A port's VLAN configuration and the sets the data path reads."""

    mode: str = "trunk"
    tag: int | None = None
    trunks: frozenset[int] = field(default_factory=frozenset)
    # Derived (filled in __post_init__):
    carries: frozenset[int] = field(init=False, repr=False, compare=False)
    tagged: frozenset[int] = field(init=False, repr=False, compare=False)
    untagged_vid: int | None = field(init=False, repr=False, compare=False)
    priority_tagged: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"bad vlan_mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.tag is not None:
            check_vid(self.tag)
        trunks = self.trunks or ALL_VLANS
        carries: frozenset[int]
        tagged: frozenset[int]
        untagged: int | None
        if self.mode == "access":
            if self.tag is None:
                raise ValueError("vlan_mode access needs a tag (the port's VLAN)")
            if self.trunks:
                raise ValueError("vlan_mode access takes a tag, not trunks")
            carries, tagged, untagged = frozenset({self.tag}), frozenset(), self.tag
        elif self.mode == "trunk":
            if self.tag is not None:
                raise ValueError("vlan_mode trunk takes trunks, not a tag "
                                 "(use native-tagged or native-untagged for a native VLAN)")
            carries = trunks
            tagged = trunks - {0}
            untagged = 0 if 0 in trunks else None
        else:
            if self.tag is None:
                raise ValueError(f"vlan_mode {self.mode} needs a tag (the native VLAN)")
            carries = trunks | {self.tag}
            if self.tag:
                # OVS (bundle_set): "force trunking the native VLAN and prohibit trunking VLAN 0".
                carries -= {0}
            tagged = carries if self.mode == "native-tagged" else carries - {self.tag}
            untagged = self.tag
        # VLAN 0 is never in `tagged`: its frames leave untagged unless they came with a
        # priority tag, and only ports that would tag VLAN 0 keep that tag.
        prio = 0 in carries and self.mode in ("trunk", "native-tagged")
        object.__setattr__(self, "carries", carries)
        object.__setattr__(self, "tagged", tagged - {0})
        object.__setattr__(self, "untagged_vid", untagged)
        object.__setattr__(self, "priority_tagged", prio)

    @classmethod
    def build(cls, tag: int | None = None, trunks: str | Iterable[int] | None = None,
              mode: str | None = None) -> PortVlan:
        """Pick the mode as OVS does when none is given: tag -> access, else trunk."""
        tr = parse_vlan_list(trunks) if trunks not in (None, "") else frozenset()
        if mode is None:
            mode = "access" if tag is not None and not tr else ("native-untagged" if tag is not None
                                                                else "trunk")
        return cls(mode=mode, tag=tag, trunks=tr)

    def describe(self) -> dict:
        return {"vlan_mode": self.mode, "tag": self.tag,
                "trunks": format_vlan_list(self.trunks) if self.trunks else "all"}


def format_vlan_list(vids: Iterable[int]) -> str:
    """{1,2,3,7} -> '1-3,7'."""
    out: list[str] = []
    run: list[int] = []
    for v in sorted(vids):
        if run and v == run[-1] + 1:
            run.append(v)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [v]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)
