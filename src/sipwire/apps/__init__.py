"""sipwire.apps."""
