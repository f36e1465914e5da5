"""SR-IOV on the emulated NIC: the capability, the PF driver, VFs, the mailbox, the IOMMU.

Sans-IO, like nicmodel: nothing here does I/O or reads a clock.  Start at
`sriov.physical_function.SriovPf`; docs/sriov.md describes the model, its choices and
the API vswitchd's SR-IOV mode builds on.
"""

from sriov.errors import SriovError
from sriov.iommu import DmaFault, HostMemory, Iommu
from sriov.physical_function import SriovPf
from sriov.vf_driver import IxgbeVf
from sriov.virtual_function import VirtualFunction

__all__ = ["DmaFault", "HostMemory", "Iommu", "IxgbeVf", "SriovError", "SriovPf", "VirtualFunction"]
