"""The operator and trader commands: the zex CLI, trading commands, zex top, the demo market."""
