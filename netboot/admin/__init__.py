"""The admin console and API: what it knows and decides, with no sockets and no clock."""
