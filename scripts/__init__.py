"""Command line, setup and benchmark scripts of gridpatrol."""
