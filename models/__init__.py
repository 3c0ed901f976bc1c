"""cardiowatch models package."""
