"""Backends shipped inside the core distribution (only the mock; the others are separate distributions)."""
