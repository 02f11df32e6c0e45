"""TFTP (RFC 1350 with the option extensions 2347-2349 and 7440), read-only, pure."""
