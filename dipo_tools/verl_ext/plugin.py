"""verl plugin entry point (filled in below)."""
