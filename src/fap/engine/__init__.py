"""fap engine role."""
