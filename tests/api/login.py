"""Logging in through the API in the tests (OAuth2 password flow on a TestClient)."""
from __future__ import annotations


def bearer(client, name: str, password: str) -> dict[str, str]:  # noqa: ANN001
    """The Authorization header of user ``name``, logged in with ``password`` (asserts it works)."""
    r = client.post("/auth/token", data={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
