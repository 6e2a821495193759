"""zex wire protocol: message types, codec, reason codes (see SPEC.md)."""
