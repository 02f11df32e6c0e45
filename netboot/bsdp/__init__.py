"""Apple's Boot Service Discovery Protocol: codec, list packing, bindings, policy."""
