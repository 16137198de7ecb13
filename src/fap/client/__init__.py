"""fap client role."""
