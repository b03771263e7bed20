"""Schema version 8 (GeoPackage and PostGIS): a store made before tracks existed gets the tables."""
from __future__ import annotations

import numpy as np
from gridpatrol.gis.tracks import Track
from gridpatrol.layers import migrations
from gridpatrol.layers.store import open_store
from gridpatrol.layers.tracks import read_tracks, save_track
from sqlalchemy import inspect, text


def test_an_older_store_gets_the_track_tables(store_url):
    s = open_store(store_url)
    with s.begin() as c:  # make it look like a version-6 store
        c.execute(text("DROP TABLE track_chunks"))
        if s.is_gpkg:
            c.execute(text("SELECT DisableSpatialIndex('tracks', 'geom')"))
            c.execute(text("DROP TABLE IF EXISTS rtree_tracks_geom"))
            c.execute(text("DELETE FROM gpkg_geometry_columns WHERE table_name = 'tracks'"))
            c.execute(text("DELETE FROM gpkg_contents WHERE table_name = 'tracks'"))
            c.execute(text("DELETE FROM gpkg_extensions WHERE table_name = 'tracks'"))
        c.execute(text("DROP TABLE tracks"))
        c.execute(text("DELETE FROM gp_schema_version WHERE version >= 8"))
    s.dispose()
    s = open_store(store_url)
    with s.engine.connect() as c:
        assert migrations.current_version(c) == migrations.CURRENT_VERSION >= 8
        assert {"tracks", "track_chunks"} <= set(inspect(c).get_table_names())
    t = 1.8e9 + np.arange(5) * 10.0
    tr = Track(104.072 + np.arange(5) * 1e-4, np.full(5, 30.668), t, np.full(5, np.nan))
    out = save_track(s, tr, worker="wu", source="api", raw=b"x")
    (row,) = read_tracks(s, worker="wu")
    assert row["id"] == out.track_id and np.allclose(row["lon"], tr.lon) and np.allclose(row["t"], t)
    s.dispose()
