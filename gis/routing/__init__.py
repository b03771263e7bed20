"""Patrol routes on street networks: street coverage per grid, key-point visits, turn-by-turn directions."""
