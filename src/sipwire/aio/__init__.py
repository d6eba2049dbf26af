"""sipwire.aio."""
