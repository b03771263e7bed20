"""How a grid plan is drawn and checked: the one definition the CLI options and the API body derive from."""
from __future__ import annotations

import json
from typing import Annotated, Any

from gridpatrol.gis.errors import InputError
from gridpatrol.gis.gridcodes import DEFAULT_CODE_FORMAT, CodeFormat
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class PlanParams(BaseModel):
    """Household target and band, caps, seed and code format of a plan."""

    model_config = ConfigDict(extra="forbid")

    target_households: float = Field(300.0, gt=0, le=100_000, description="Households per grid to aim for")
    min_households: float = Field(300.0, ge=0, le=100_000, description="Lower end of the household band")
    max_households: float = Field(500.0, gt=0, le=100_000, description="Upper end of the household band")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed (the same seed gives the same plan)")
    max_street_m: float | None = Field(None, gt=0, description="Cap on street length per grid, metres")
    max_area_m2: float | None = Field(None, gt=0, description="Cap on grid area, m²")
    code_format: str = Field(DEFAULT_CODE_FORMAT, max_length=200,
                             description="Grid code format (fields county, street, community, seq)")
    allow_sparse: bool = Field(False, description="Draw areas whose streets and buildings cover less than 20 % "
                                                  "of them (refused otherwise)")

    @classmethod
    def parse(cls, values: dict[str, Any]) -> PlanParams:
        """``values`` as checked params; InputError naming the option when one is out of range."""
        try:
            return cls(**values).checked()
        except ValidationError as exc:
            err = exc.errors()[0]
            name = "--" + str(err["loc"][0]).replace("_", "-") if err.get("loc") else "plan parameters"
            raise InputError(f"{name} = {err.get('input')!r}: {err.get('msg')}") from None

    def checked(self) -> PlanParams:
        """Raise InputError for a band that does not contain the target or a bad code format; returns self."""
        if not (self.min_households <= self.target_households <= self.max_households):
            raise InputError(
                f"household band {self.min_households:g}–{self.max_households:g} does not contain the "
                f"target {self.target_households:g}",
                hint="use --min-households ≤ --target-households ≤ --max-households",
            )
        CodeFormat(self.code_format)
        return self

    @classmethod
    def from_json(cls, text: str | None) -> PlanParams:
        """Params stored in grid_plans.params_json (keys of older or newer versions ignored)."""
        raw = json.loads(text or "{}")
        return cls.model_construct(**{k: v for k, v in raw.items() if k in cls.model_fields})

    def to_json(self) -> str:
        """The params as stored in grid_plans.params_json."""
        return json.dumps(self.model_dump())


class DrawParams(PlanParams):
    """The plan parameters and an optional plan name: POST /grids/draw and the draw-grids job."""

    name: str | None = Field(default=None, max_length=200)


GridCode = Annotated[str, Field(min_length=1, max_length=64)]


class GridCodes(BaseModel):
    """Grid codes an edit works on (merge, rebalance), and whether to override its refusals."""

    codes: Annotated[list[GridCode], Field(min_length=1, max_length=200)]
    force: bool = False


class RebalanceParams(GridCodes):
    """The rebalance job: POST /grids/rebalance's body and its plan (default: the newest)."""

    model_config = ConfigDict(extra="forbid")

    plan_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class RoutesParams(BaseModel):
    """Routes to plan: POST /routes/plan's body and the plan-routes job (no grids: every grid of the plan)."""

    model_config = ConfigDict(extra="forbid")

    grids: Annotated[list[GridCode] | None,
                     Field(default=None, max_length=500, description="grid codes; omitted: every grid of the plan")]
    mode: str = Field(default="walk", pattern="^(walk|drive)$")
    workers: int = Field(default=1, ge=1, le=20)
    start: tuple[float, float] | None = Field(default=None, description="[lon, lat] start instead of the station")
    time_limit_s: float = Field(default=30, gt=0, le=300)
    plan_id: int | None = Field(default=None, ge=1, le=2**31 - 1)

    @field_validator("start")
    @classmethod
    def _lon_lat(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not (-180 <= v[0] <= 180 and -90 <= v[1] <= 90):
            raise ValueError(f"start {v[0]}, {v[1]} is not a WGS-84 longitude, latitude")
        return v
