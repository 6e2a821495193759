"""The gateway: client sessions, validation and stateless risk in front of the matcher."""
