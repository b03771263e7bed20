"""The data layers of gridpatrol: schema, stores (GeoPackage and PostGIS), import and export."""
