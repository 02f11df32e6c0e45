"""Reliability tests: the real daemon, in network namespaces, under hostile and sustained input.

The fuzz (issue #10): `fuzzer` is both a library and a program; it runs inside
a lab's client namespace as its own process, so the datagrams it sends cross a
real veth pair and the daemon's real sockets, as an attacker's would.
`harness` sets up that lab and reads the daemon's counters; `test_fuzz` (the
CI form) and `benchmarks/fuzz.py` (the full form) differ only in size.
"""
