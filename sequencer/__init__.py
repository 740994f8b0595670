"""The sequencer: the SCR wire format (``header``) and the userspace shim (``shim``)."""
