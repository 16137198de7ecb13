"""fap worker role."""
