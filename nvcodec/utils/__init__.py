"""Small shared helpers (atomic output files, interrupts, memory, threads)."""
