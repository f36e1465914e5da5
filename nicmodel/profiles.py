"""Device profiles: the real limits of the NICs the model can pretend to be.

A `Profile` is pure data (no state).  Limits come from nic-model.md section B
(driver sources quoted there); the RX packet-buffer sizes are not in the
reference and are the datasheets' usual figures (512 KiB on the 82599,
64 KiB on the 82576 and i350) -- override them with
``Nic(..., packet_buffer_bytes=...)`` when an experiment needs another size.

Queue layout.  A pool owns ``queues_per_pool`` RX and TX queues:

* 82599 (``interleaved=False``): pool p, index i -> queue ``p * qpp + i``
  (64 x 2 with MRQC 0xB or 0x8, 32 x 4 with MRQC 0xA).  The default is
  0x8, VMDq only: 64 pools, RSS off, so a pool's traffic uses its first queue;
  0xB and 0xA spread a pool's traffic over its queues (see sorter.rss_index).
* 82576 (``interleaved=True``): pool p, index i -> queue ``p + 8 * i``
  ([QI] "PQn = VFn + VQn*8"), so pool p owns queues p and p+8.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Profile", "PROFILES", "VmdqLayout", "get_profile"]


@dataclass(frozen=True)
class VmdqLayout:
    """One MRQC VMDq mode: how many pools, queues per pool, and whether RSS spreads inside a pool."""

    mrqc: int
    pools: int
    queues_per_pool: int
    rss: bool


@dataclass(frozen=True)
class Profile:
    name: str
    device_id: int
    vf_device_id: int
    num_queues: int
    rar_entries: int
    vlvf_entries: int
    total_vfs: int
    interleaved: bool
    layouts: tuple[VmdqLayout, ...]
    default_mrqc: int
    packet_buffer_bytes: int
    # Per-pool unicast promiscuous (PFVML2FLT.UPE / VPE) exists on X540 and later only
    # (nic-model.md E.4); the 82599/82576 return EOPNOTSUPP for it.
    per_pool_upe: bool = False
    link_speed_bps: int = 10_000_000_000
    # Link speeds the PHY can run at (Mb/s); ixgbe_link_mbps knows 100 / 1000 / 10000.
    link_speeds_mbps: tuple[int, ...] = (100, 1000, 10_000)
    # The Linux PF driver whose admin rules the model follows (ixgbe: 82599/X550, igb: 82576/i350),
    # and whether it can set a VF's TX rate at all (igb: the 82576 only).
    driver: str = "ixgbe"
    vf_rate_limit: bool = True
    hash_bits: int = 4096  # MTA, UTA, VFTA: 128 registers x 32 bits each
    revision: int = 0x01
    subsystem_id: int = 0x0000
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def layout(self, mrqc: int) -> VmdqLayout:
        for lay in self.layouts:
            if lay.mrqc == mrqc:
                return lay
        modes = ", ".join(f"{lay.mrqc:#x} ({lay.pools}x{lay.queues_per_pool})" for lay in self.layouts)
        raise ValueError(f"{self.name}: MRQC mode {mrqc:#x} is not a VMDq mode of this device "
                         f"(supported: {modes})")

    def queue_of(self, lay: VmdqLayout, pool: int, index: int) -> int:
        """Absolute queue number of queue ``index`` of ``pool`` under layout ``lay``."""
        if self.interleaved:
            return pool + lay.pools * index
        return pool * lay.queues_per_pool + index


PROFILES: dict[str, Profile] = {
    "82599": Profile(
        name="82599", device_id=0x10FB, vf_device_id=0x10ED, num_queues=128,
        rar_entries=128, vlvf_entries=64, total_vfs=64, interleaved=False,
        layouts=(VmdqLayout(0x8, 64, 2, False), VmdqLayout(0xB, 64, 2, True),
                 VmdqLayout(0xA, 32, 4, True)),
        default_mrqc=0x8, packet_buffer_bytes=512 * 1024),
    "82576": Profile(
        name="82576", device_id=0x10C9, vf_device_id=0x10CA, num_queues=16,
        rar_entries=24, vlvf_entries=32, total_vfs=8, interleaved=True,
        layouts=(VmdqLayout(0x3, 8, 2, False), VmdqLayout(0x5, 8, 2, True)),
        default_mrqc=0x3, packet_buffer_bytes=64 * 1024, link_speed_bps=1_000_000_000,
        link_speeds_mbps=(10, 100, 1000), driver="igb"),
    # The X550 has the 82599's VT architecture (nic-model.md Sources) plus per-pool
    # UPE/VPE (E.4); limits as the 82599's.  Used to exercise VPE/UPE rules.
    "x550": Profile(
        name="x550", device_id=0x1563, vf_device_id=0x1565, num_queues=128,
        rar_entries=128, vlvf_entries=64, total_vfs=64, interleaved=False,
        layouts=(VmdqLayout(0x8, 64, 2, False), VmdqLayout(0xB, 64, 2, True),
                 VmdqLayout(0xA, 32, 4, True)),
        default_mrqc=0x8, packet_buffer_bytes=384 * 1024, per_pool_upe=True),
    "i350": Profile(
        name="i350", device_id=0x1521, vf_device_id=0x1520, num_queues=8,
        rar_entries=32, vlvf_entries=32, total_vfs=8, interleaved=False,
        layouts=(VmdqLayout(0x3, 8, 1, False),),
        default_mrqc=0x3, packet_buffer_bytes=64 * 1024, link_speed_bps=1_000_000_000,
        link_speeds_mbps=(10, 100, 1000), driver="igb", vf_rate_limit=False),
}


def get_profile(name: str | Profile) -> Profile:
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown NIC profile {name!r} (known: {', '.join(PROFILES)})") from None
