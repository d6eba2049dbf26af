"""sipwire.store."""
