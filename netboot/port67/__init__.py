"""Port 67: the decisions of the listener that BSDP and PXE share, above both.

`dispatch.py` dissects a datagram once and offers it to the handlers in
order; `bsdp.py` and `pxe.py` are the bodies of the two handlers, each a
function from a packet and its arrival to a typed `Outcome`; `arrival.py`
says where a datagram came in. The Twisted adapters in `netboot_services`
only add sockets, the clock, logging, counters and the client tracker.
"""
