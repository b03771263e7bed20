"""Recipes of the expensive stores the tests share (built once, cached: see tests/store_cache.py)."""
from __future__ import annotations

from pathlib import Path

from tests.conftest import data_path

CHENGDU_DISTRICTS = ["510104", "510105", "510106", "510107", "510108"]
# The band several tests draw 锦江区 with (the default band, target 400 instead of 300).
BAND_400 = {"target_households": 400, "min_households": 300, "max_households": 500, "seed": 1}


def jinjiang_inputs() -> list[Path]:
    return [data_path("chengdu", "chengdu.osm"), data_path("chengdu", "510104.geojson")]


def chengdu_inputs() -> list[Path]:
    return [data_path("chengdu", "chengdu.osm")] + [data_path("chengdu", f"{c}.geojson") for c in CHENGDU_DISTRICTS]


def chengdu_osm_inputs() -> list[Path]:
    return [data_path("chengdu", "chengdu.osm")]


def chengdu_osm_only(store) -> None:  # noqa: ANN001
    """Chengdu's streets, buildings and cameras as `gridpatrol import-osm chengdu.osm` imports them; no areas."""
    from gridpatrol.layers.importing import import_osm

    import_osm(store, data_path("chengdu", "chengdu.osm"))


def jinjiang_district_seed1(store) -> None:  # noqa: ANN001
    """Chengdu's streets, 锦江区 as a district, a plan drawn with the default band and seed 1."""
    from gridpatrol.layers import grids as plans
    from gridpatrol.layers.importing import import_areas, import_osm

    import_osm(store, data_path("chengdu", "chengdu.osm"))
    import_areas(store, data_path("chengdu", "510104.geojson"), crs="gcj02", level="district")
    plans.draw_grids(store, plans.PlanParams(seed=1))


def jinjiang_band400(store) -> None:  # noqa: ANN001
    """Chengdu's streets, 锦江区 (default level), a plan drawn with BAND_400."""
    from gridpatrol.layers import grids as plans
    from gridpatrol.layers.importing import import_areas, import_osm

    import_osm(store, data_path("chengdu", "chengdu.osm"))
    import_areas(store, data_path("chengdu", "510104.geojson"), crs="gcj02")
    plans.draw_grids(store, plans.PlanParams(**BAND_400))


def jinjiang_named_seed1(store) -> None:  # noqa: ANN001
    """Chengdu's streets, 锦江区 imported under its name (default level), a plan drawn with seed 1."""
    from gridpatrol.layers import grids as plans
    from gridpatrol.layers.importing import import_area_files, import_osm

    import_osm(store, data_path("chengdu", "chengdu.osm"))
    import_area_files(store, [data_path("chengdu", "510104.geojson")], crs="gcj02", name="锦江区")
    plans.draw_grids(store, plans.PlanParams(seed=1))


def chengdu_five_districts(store) -> None:  # noqa: ANN001
    """Chengdu's streets and its five central districts (default level), no plan yet."""
    from gridpatrol.layers.importing import import_areas, import_osm

    import_osm(store, data_path("chengdu", "chengdu.osm"))
    for code in CHENGDU_DISTRICTS:
        import_areas(store, data_path("chengdu", f"{code}.geojson"), crs="gcj02")


def chengdu_five_districts_seed1(store) -> None:  # noqa: ANN001
    """The five districts with a plan drawn as `gridpatrol demo` does (default band, seed 1)."""
    from gridpatrol.layers import grids as plans

    chengdu_five_districts(store)
    plans.draw_grids(store, plans.PlanParams(seed=1))


JOB_USERS = {"ada": "admin", "pia": "planner", "pete": "planner", "dan": "dispatcher", "vic": "viewer"}
JOB_PASSWORD = "test-password-123"


def jinjiang_with_users(store) -> None:  # noqa: ANN001
    """Chengdu's streets, 锦江区 as the one district, users of each role (JOB_USERS); no plan yet."""
    from gridpatrol.layers import users
    from gridpatrol.layers.importing import import_areas, import_osm

    import_osm(store, data_path("chengdu", "chengdu.osm"))
    import_areas(store, data_path("chengdu", "510104.geojson"), crs="gcj02", level="district")
    for name, role in JOB_USERS.items():
        users.create_user(store, name, role, JOB_PASSWORD)
