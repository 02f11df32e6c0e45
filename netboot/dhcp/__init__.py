"""DHCP (RFC 2131/2132) packets and the decisions made on port 67."""
