"""Matcher tests: the book and engine against a model, and their invariants."""
