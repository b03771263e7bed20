"""Grid plans: draw, check, diff, redraw edits, import, map (one module per job, the public names here)."""
from gridpatrol.layers.grids.area_draw import (  # noqa: F401
    area_codes,
    area_params,
    draw_area,
)
from gridpatrol.layers.grids.core import (  # noqa: F401
    AREA_LEVELS,  # noqa: F401
    STATION_TOLERANCE_M,
    Progress,  # noqa: F401
    as_multi,
    buildings_with_grid_code,
    check_frames,
    check_grids,
    diff_plans,
    draw_grids,
    export_frame,
    export_plan_id,
    grid_measures,
    grid_workload,
    grids_from_blocks,
    insert_plan,
    insert_rows,
    latest_plan_id,
    list_plans,
    mark_exempt,
    measure_records,
    metric_crs_of,
    plan_grid_measures,
    plan_metrics,
    plan_row,
    planning_areas,
    read_blocks,
    read_grids,
    read_within,
    real_buildings,
    shape_metrics,
)
from gridpatrol.layers.grids.edits import (  # noqa: F401
    EditResult,
    assign_workers,
    merge_grids,
    move_blocks,
    plan_from_blocks,
    rebalance_grids,
    restore_version,
    set_locked,
    split_grid,
)
from gridpatrol.layers.grids.imports import (  # noqa: F401
    import_grids,
)
from gridpatrol.layers.grids.maps import (  # noqa: F401
    plan_map,
)
from gridpatrol.layers.plan_params import PlanParams  # noqa: F401
