"""cardiowatch alerts package."""
