"""sipwire.media."""
