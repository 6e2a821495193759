"""The matcher: books, engine, journal and the node that owns them."""
