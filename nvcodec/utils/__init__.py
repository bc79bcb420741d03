"""Small shared helpers (atomic output files)."""
