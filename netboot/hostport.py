"""A peer's address and port as text, for both IP families: the one way we write and read it.

Logs (`client`), the status page, journeys and metrics name a peer as
`host:port`. An IPv6 address holds colons itself, so its text form is
`[addr]:port` (RFC 3986's IP-literal, as in URLs); a link-local one keeps
its zone, the interface it is reachable through, as the kernel names it:
`[fe80::1%nb0]:69`. Where IPv4 shows just the address, IPv6 shows just the
address too, without brackets (`fe80::1%nb0`).

Python's socket layer already writes a link-local peer's host as
`fe80::1%nb0`, so a `(host, port)` pair from `recvfrom` or Twisted goes
through `join_host_port` as it is. Every reader of these texts (the lab's
stage tracker, tests) splits them with `split_host_port`, never on ":".
"""

from __future__ import annotations


def join_host_port(host: str, port: int) -> str:
    """`host:port`, or `[host]:port` when the host is an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(text: str) -> tuple[str, int | None]:
    """The host (without brackets) and port of `join_host_port`'s text; a bare host
    (IPv4, name, or an IPv6 address with or without brackets) has no port.

    Raises ValueError for text that is neither (an unclosed bracket, a port
    that is not a number).
    """
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{text!r}: no closing bracket")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError(f"{text!r}: text after the bracket is not :port")
        return host, _port(text, rest[1:])
    if text.count(":") > 1:
        return text, None  # a bare IPv6 address
    host, colon, port = text.partition(":")
    return (host, _port(text, port)) if colon else (host, None)


def host_of(text: str) -> str:
    """Just the host of a `client` text (`[fe80::1%nb0]:69` -> `fe80::1%nb0`)."""
    return split_host_port(text)[0]


def _port(text: str, port: str) -> int:
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"{text!r}: {port!r} is not a port")
    return int(port)
