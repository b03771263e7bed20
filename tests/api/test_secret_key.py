"""Weak token keys are refused at startup: one repeated letter, few distinct characters, placeholders."""
from __future__ import annotations

import os
import subprocess

import pytest
from gridpatrol.api.config import load_settings
from gridpatrol.gis.errors import InputError

from tests.api.live_server import CLI, ROOT


@pytest.mark.parametrize("key,words", [
    ("k" * 32, ["only 1 distinct"]),
    ("ab" * 20, ["only 2 distinct"]),
    ("0123456789abcde" * 3, ["only 15 distinct"]),
    ("changeme-" + "Xy7Qp3Lm9Zr2Tw8Vn4Bk5Hs", ["placeholder 'changeme'"]),
    ("My-Super-SECRET-key-for-gridpatrol-2024", ["placeholder 'secret'"]),
    ("short-Key-9", ["at least 32 characters"]),
])
def test_weak_secret_keys_are_refused(key, words, monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("GRIDPATROL_SECRET_KEY", key)
    with pytest.raises(InputError) as err:
        load_settings()
    for w in words:
        assert w in str(err.value)
    assert "GRIDPATROL_SECRET_KEY" in str(err.value)  # says what to do


def test_a_random_key_is_accepted(monkeypatch):  # noqa: ANN001
    key = "Vq7rT2mXo9LpZ4cNw8KsYb3Hd6Fj1Ga5"
    monkeypatch.setenv("GRIDPATROL_SECRET_KEY", key)
    assert load_settings().secret_key == key


def test_serve_refuses_a_repeated_letter_key_with_a_clear_message(tmp_path):  # noqa: ANN001
    res = subprocess.run([*CLI, "--db", str(tmp_path / "s.gpkg"), "serve", "--port", "1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "GRIDPATROL_SECRET_KEY": "a" * 32})
    assert res.returncode != 0
    assert "secret_key is not a key" in res.stderr and "Traceback" not in res.stderr
