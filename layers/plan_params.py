"""How a grid plan is drawn and checked: the one definition the CLI options and the API body derive from."""
from __future__ import annotations

import json
from typing import Annotated, Any

from gridpatrol.gis.errors import InputError
from gridpatrol.gis.gridcodes import DEFAULT_CODE_FORMAT, CodeFormat
from gridpatrol.gis.workload import BALANCES, balance_weights, parse_weights, weights_text
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class PlanParams(BaseModel):
    """Household target and band, workload balanced on, caps, seed and code format of a plan.

    The band is given in households; a plan balanced on another workload (``balance``) scales
    it by ``workload_per_household`` (the plan's total workload / total households, fixed when
    it is drawn), so that e.g. 300–500 households become 786–1,310 persons at 2.62 persons per
    household.
    """

    model_config = ConfigDict(extra="forbid")

    target_households: float = Field(300.0, gt=0, le=100_000, description="Households per grid to aim for")
    min_households: float = Field(300.0, ge=0, le=100_000, description="Lower end of the household band")
    max_households: float = Field(500.0, gt=0, le=100_000, description="Upper end of the household band")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed (the same seed gives the same plan)")
    max_street_m: float | None = Field(None, gt=0, description="Cap on street length per grid, metres")
    max_area_m2: float | None = Field(None, gt=0, description="Cap on grid area, m²")
    max_route_min: float | None = Field(None, gt=0, le=100_000, description="Cap on a grid's patrol, minutes: the "
                                        "walking route over all its streets (as plan-routes plans it, 4.5 km/h)")
    code_format: str = Field(DEFAULT_CODE_FORMAT, max_length=200,
                             description="Grid code format (fields county, street, community, seq)")
    balance: str = Field("households", description="Workload a grid is balanced on: households, population, "
                                                   "or weighted (the weighted sum of --weights)")
    weights: str | None = Field(None, max_length=500, description="With --balance weighted: measure=weight,… "
                                "(measures households, population, street_km, area_km2, buildings), "
                                "e.g. households=1,street_km=20")
    workload_per_household: float | None = Field(None, gt=0, le=1e9, description="Workload per household the band "
                                                 "is scaled by (default: the plan's total workload / households)")
    allow_sparse: bool = Field(False, description="Draw areas whose streets and buildings cover less than 20 % "
                                                  "of them (refused otherwise)")
    # rural mode (村, docs/rural.md): grids of whole settlements under --max-area-m2 and --max-travel-min
    mode: str = Field("urban", pattern="^(urban|rural)$", description="urban: blocks balanced on households; "
                      "rural: whole settlements (villages, hamlets) per grid under the area and travel limits")
    max_travel_min: float | None = Field(None, gt=0, le=1440, description="With --mode rural: minutes from a "
                                         "grid's station to each of its settlements over the streets")
    travel_mode: str = Field("drive", pattern="^(walk|drive)$", description="With --mode rural: how "
                             "--max-travel-min travels (walk 4.5 km/h; drive by road class)")
    settlement_gap_m: float = Field(100.0, gt=0, le=2000, description="With --mode rural: buildings closer "
                                    "than this (m, footprint to footprint) are one settlement")

    @field_validator("balance")
    @classmethod
    def _balance(cls, v: str) -> str:
        if v not in BALANCES:
            raise ValueError(f"balance must be one of {', '.join(BALANCES)}")
        return v

    @field_validator("weights", mode="before")
    @classmethod
    def _weights(cls, v: object) -> str | None:
        try:
            w = parse_weights(v)  # type: ignore[arg-type]
        except InputError as exc:
            raise ValueError(str(exc).removeprefix("--weights: ")) from None
        return None if w is None else weights_text(w)

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
        if self.weights is not None and self.balance != "weighted":
            raise InputError(f"--weights is for --balance weighted, not --balance {self.balance}",
                             hint="add --balance weighted, or leave --weights out")
        balance_weights(self.balance, self.weight_map())
        CodeFormat(self.code_format)
        if getattr(self, "mode", "urban") != "rural" and getattr(self, "max_travel_min", None) is not None:
            raise InputError("--max-travel-min is a limit of rural grids (--mode rural)",
                             hint="add --mode rural, or leave --max-travel-min out")
        if getattr(self, "mode", "urban") == "rural" and self.max_street_m is not None:
            raise InputError("--max-street-m is not a limit of rural grids (--mode rural)",
                             hint="rural grids are limited by --max-area-m2 and --max-travel-min")
        if getattr(self, "mode", "urban") == "rural" and getattr(self, "max_route_min", None) is not None:
            raise InputError("--max-route-min is not a limit of rural grids (--mode rural)",
                             hint="rural grids are limited by --max-travel-min (from the station to each settlement)")
        if getattr(self, "mode", "urban") == "rural" and self.balance != "households":
            raise InputError(f"rural grids balance households only, not --balance {self.balance}",
                             hint="leave --balance out with --mode rural")
        return self

    def weight_map(self) -> dict[str, float] | None:
        """``weights`` as {measure: weight} (None when not given)."""
        return parse_weights(self.weights)

    def workload_weights(self) -> dict[str, float]:
        """What a grid's workload sums: {households: 1}, {population: 1} or the given weights."""
        return balance_weights(getattr(self, "balance", "households") or "households", self.weight_map())

    @property
    def on_households(self) -> bool:
        """True when the plan balances households alone (the band applies as given)."""
        return self.workload_weights() == {"households": 1.0}

    def band_scale(self) -> float:
        """Workload units per household the band is multiplied by (1 when balancing households)."""
        if self.on_households:
            return 1.0
        if not self.workload_per_household:
            raise InputError("the plan's workload per household is not known",
                             hint="give --workload-per-household, or draw the plan again")
        return float(self.workload_per_household)

    def workload_band(self) -> tuple[float, float, float]:
        """(target, low, high) in workload units: the household band times ``band_scale``."""
        s = self.band_scale()
        if s == 1.0:
            return self.target_households, self.min_households, self.max_households
        return self.target_households * s, self.min_households * s, self.max_households * s

    def workload_unit(self) -> str:
        """How messages name a grid's workload: households, persons or workload units."""
        return {"households": "households", "population": "persons"}.get(self.balance, "workload units")

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


AreaCode = Annotated[str, Field(min_length=1, max_length=64, description="a planning area's code")]


class DrawJobParams(DrawParams):
    """The draw-grids job: POST /grids/draw's body, and ``area`` to redraw that planning area alone."""

    area: AreaCode | None = None


class RoutesJobParams(RoutesParams):
    """The plan-routes job: POST /routes/plan's body, and ``area`` for every grid of that planning area."""

    area: AreaCode | None = None

    @model_validator(mode="after")
    def _grids_or_area(self) -> RoutesJobParams:
        if self.area is not None and self.grids:
            raise ValueError("give grids or area, not both")
        return self
