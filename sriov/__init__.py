"""SR-IOV on the emulated NIC (capability, PF, VFs, mailbox); see the open issue."""
