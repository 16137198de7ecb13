"""fap server role."""
