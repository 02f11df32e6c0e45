"""The admin console and API: assignments, machines, image edits, auth, events (all pure)."""
