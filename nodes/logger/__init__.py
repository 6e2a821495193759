"""The logger node: the audit trail (PULL sink + gap-free event stream -> checksummed segments)."""
