"""cardiowatch streams package."""
