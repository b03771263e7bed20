"""Fixtures for the API tests: a store seeded with real Chengdu data (see api_seed), on both stores."""
from __future__ import annotations

import pytest

from tests.api.api_seed import (
    CLEARED_DISPATCHER,
    PASSWORD,
    ROLE_USERS,
    chengdu_osm,
    seed,
)
from tests.api.login import bearer
from tests.store_cache import cached_module_store_url


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def loaded_store_url(request, tmp_path_factory):  # noqa: ANN001, ANN201
    """URL of a store of the module's own holding the seed (see seed), on GeoPackage and PostGIS:
    seeded once per session and code version (tests/store_cache.py), copied for each module."""
    with cached_module_store_url(request, tmp_path_factory, "api-seed", seed, [chengdu_osm()]) as url:
        yield url


@pytest.fixture(scope="module")
def app(loaded_store_url):  # noqa: ANN001, ANN201
    from gridpatrol.api.app import create_app
    from gridpatrol.api.config import load_settings

    application = create_app(loaded_store_url, settings=load_settings(log_level="WARNING"))
    yield application
    application.state.store.dispose()


@pytest.fixture(scope="module")
def client(app, request):  # noqa: ANN001, ANN201
    """A test client of ``app``. A module that sets ``SERVER_WORKER = False`` gets it without the app's lifespan:
    no job worker thread in the server, so each test runs the store's worker itself and sees its job queued first."""
    from fastapi.testclient import TestClient

    if not getattr(request.module, "SERVER_WORKER", True):
        yield TestClient(app, raise_server_exceptions=False)
        return
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def tokens(client) -> dict[str, dict[str, str]]:  # noqa: ANN001
    """Authorization headers per user name (plus 'anonymous': no header)."""
    out: dict[str, dict[str, str]] = {"anonymous": {}}
    for name in [*ROLE_USERS.values(), CLEARED_DISPATCHER]:
        out[name] = bearer(client, name, PASSWORD)
    return out


@pytest.fixture
def fast_path_answers(monkeypatch) -> list[bool]:  # noqa: ANN001
    """Patches api.routes.lookup.LookupFastPath: the returned list gets, per request it sees,
    whether the fast path answered it (True) or passed it on to the route (False)."""
    from gridpatrol.api.routes import lookup as lookup_mod

    answered: list[bool] = []
    original = lookup_mod.LookupFastPath._answer

    async def counting(self, scope):  # noqa: ANN001, ANN202
        body = await original(self, scope)
        answered.append(body is not None)
        return body

    monkeypatch.setattr(lookup_mod.LookupFastPath, "_answer", counting)
    return answered


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def jinjiang_store_url(request, tmp_path_factory):  # noqa: ANN001, ANN201
    """URL of a store of the module's own: 锦江区 with the job users (tests/cached_stores.py) and no
    plan, on GeoPackage and PostGIS. A module serves it by overriding ``loaded_store_url`` with it."""
    from tests.cached_stores import jinjiang_inputs, jinjiang_with_users

    with cached_module_store_url(request, tmp_path_factory, "jobs-jinjiang", jinjiang_with_users,
                                 jinjiang_inputs()) as u:
        yield u
