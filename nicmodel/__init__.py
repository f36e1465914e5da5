"""An emulated 82599-class PCIe NIC: VMDq pools, rings, interrupt moderation, TX arbitration."""
