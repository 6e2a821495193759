"""Crash anywhere: the whole exchange as processes, SIGKILLed one node at a time under load."""
