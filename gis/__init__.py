"""Pure geospatial computation for gridpatrol: geodata in, geodata out (no database, no HTTP)."""
