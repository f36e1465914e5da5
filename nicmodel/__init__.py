"""An emulated 82599-class PCIe NIC: VMDq pools, rings, interrupt moderation, TX arbitration.

Sans-IO: nothing here does I/O or reads a clock.  Start at `nicmodel.nic.Nic`;
docs/nicmodel.md describes the model, its order of operations and its API.
"""

from nicmodel.nic import Nic
from nicmodel.profiles import PROFILES, Profile, get_profile
from nicmodel.tables import NicError, TableFull

__all__ = ["Nic", "NicError", "PROFILES", "Profile", "TableFull", "get_profile"]
