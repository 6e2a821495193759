"""zex nodes: matcher (books, engine, journal) and the processes around it."""
