"""scapy's reading of a DHCPv6 datagram, as the oracle for `netboot.dhcp6wire`.

scapy dissects DHCPv6 the way packet tools see it. `scapy_read` turns its
layers into plain values (header fields, then each option as its code and the
value scapy decoded), in the same shapes `tests/test_dhcp6_codec.py` gets from
our typed readers, so the two can be compared with `==`.
"""

from __future__ import annotations

from ipaddress import IPv6Address
from typing import Any

from scapy.layers.dhcp6 import (
    DHCP6,
    DUID_EN,
    DUID_LL,
    DUID_LLT,
    DUID_UUID,
    DHCP6_RelayForward,
    DHCP6OptBootFileUrl,
    DHCP6OptClientArchType,
    DHCP6OptClientId,
    DHCP6OptClientLinkLayerAddr,
    DHCP6OptClientNetworkInterId,
    DHCP6OptDNSDomains,
    DHCP6OptDNSServers,
    DHCP6OptElapsedTime,
    DHCP6OptIA_NA,
    DHCP6OptIAAddress,
    DHCP6OptIfaceId,
    DHCP6OptOptReq,
    DHCP6OptPref,
    DHCP6OptRapidCommit,
    DHCP6OptRelayMsg,
    DHCP6OptStatusCode,
    DHCP6OptUnknown,
    DHCP6OptUserClass,
    DHCP6OptVendorClass,
    _dhcp6_dispatcher,
)
from scapy.packet import NoPayload, Packet

from netboot.dhcp6wire.duid import Duid
from netboot.dhcp6wire.ia import IaAddress, IaNa, StatusCode
from netboot.dhcp6wire.values import ClientLinkLayerAddress, NetworkInterfaceId, VendorClass


def scapy_read(datagram: bytes) -> tuple[object, ...]:
    """(msg_type, transaction id or relay fields..., ((code, value), ...)) as scapy reads it."""
    return _message(_dhcp6_dispatcher(datagram))  # type: ignore[no-untyped-call]


def _message(message: Packet) -> tuple[object, ...]:
    if isinstance(message, DHCP6_RelayForward):  # Relay-reply is its subclass
        header: tuple[object, ...] = (
            message.msgtype,
            message.hopcount,
            IPv6Address(message.linkaddr),
            IPv6Address(message.peeraddr),
        )
    else:
        assert isinstance(message, DHCP6)
        header = (message.msgtype, message.trid)
    return (*header, tuple(_option(layer) for layer in _chain(message.payload)))


def _chain(layer: Any) -> list[Packet]:
    layers = []
    while not isinstance(layer, NoPayload):
        layers.append(layer)
        layer = layer.payload
    return layers


def _duid(duid: Packet) -> Duid:
    if isinstance(duid, DUID_LLT):
        mac = bytes.fromhex(duid.lladdr.replace(":", ""))
        return Duid(1, mac, hardware_type=duid.hwtype, time=duid.timeval)
    if isinstance(duid, DUID_EN):
        return Duid(2, duid.id, enterprise_number=duid.enterprisenum)
    if isinstance(duid, DUID_LL):
        return Duid(3, bytes.fromhex(duid.lladdr.replace(":", "")), hardware_type=duid.hwtype)
    if isinstance(duid, DUID_UUID):
        return Duid(4, duid.uuid.bytes)
    raise AssertionError(f"scapy read no DUID: {duid!r}")


def _status(layer: Packet) -> StatusCode:
    return StatusCode(layer.statuscode, bytes(layer.statusmsg).decode())


def _option(layer: Packet) -> tuple[int, object]:
    code = int(layer.optcode)
    if isinstance(layer, DHCP6OptClientId):  # SERVERID is its subclass
        return code, _duid(layer.duid)
    if isinstance(layer, DHCP6OptIA_NA):
        items: list[object] = []
        # scapy hangs an option that follows a STATUS_CODE on it as its payload.
        for item in (each for listed in layer.ianaopts for each in _chain(listed)):
            if isinstance(item, DHCP6OptIAAddress):
                sub = tuple(_status(s) for listed in item.iaaddropts for s in _chain(listed))
                items.append(IaAddress(IPv6Address(item.addr), item.preflft, item.validlft, sub))
            else:
                items.append(_status(item))
        return code, IaNa(layer.iaid, layer.T1, layer.T2, tuple(items))  # type: ignore[arg-type]
    if isinstance(layer, DHCP6OptStatusCode):
        return code, _status(layer)
    if isinstance(layer, DHCP6OptClientArchType | DHCP6OptOptReq):
        field = "archtypes" if isinstance(layer, DHCP6OptClientArchType) else "reqopts"
        return code, tuple(getattr(layer, field))
    if isinstance(layer, DHCP6OptVendorClass):
        return code, VendorClass(layer.enterprisenum, tuple(d.data for d in layer.vcdata))
    if isinstance(layer, DHCP6OptUserClass):
        return code, tuple(d.data for d in layer.userclassdata)
    if isinstance(layer, DHCP6OptBootFileUrl):
        return code, bytes(layer.optdata).decode()
    if isinstance(layer, DHCP6OptDNSServers):
        return code, tuple(IPv6Address(a) for a in layer.dnsservers)
    if isinstance(layer, DHCP6OptDNSDomains):
        names = (n.decode() if isinstance(n, bytes) else n for n in layer.dnsdomains)
        return code, tuple(name.removesuffix(".") for name in names)
    if isinstance(layer, DHCP6OptElapsedTime):
        return code, int(layer.elapsedtime)
    if isinstance(layer, DHCP6OptClientNetworkInterId):
        return code, NetworkInterfaceId(layer.iitype, layer.iimajor, layer.iiminor)
    if isinstance(layer, DHCP6OptRelayMsg):
        return code, _message(layer.message)
    if isinstance(layer, DHCP6OptPref):
        return code, int(layer.prefval)
    if isinstance(layer, DHCP6OptRapidCommit):
        return code, b""
    if isinstance(layer, DHCP6OptIfaceId):
        return code, bytes(layer.ifaceid)
    if isinstance(layer, DHCP6OptClientLinkLayerAddr):
        mac = bytes.fromhex(str(layer.clladdr).replace(":", ""))
        return code, ClientLinkLayerAddress(int(layer.lltype), mac)
    if isinstance(layer, DHCP6OptUnknown):
        return code, bytes(layer.data)
    raise AssertionError(f"no oracle reading for scapy layer {layer.__class__.__name__}")
