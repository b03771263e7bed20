"""gridpatrol HTTP service: FastAPI routes, OGC API – Features, auth and offline map pages."""
