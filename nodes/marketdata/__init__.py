"""Market data: the books rebuilt from the matcher's event stream, published to subscribers."""
