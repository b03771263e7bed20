"""The bbox rules of OGC API items, /buildings and the other bbox parameters (docs/gis-clients.md,
OGC API – Features): four numbers, or six with heights (ignored); CRS84 degrees within ±180 / ±90,
the edges included; min ≤ max; every refusal says what is wrong and how to ask (the 400 a client
reads). Found missing by scripts/mutation.py (api/ogc.py's parse_bbox). Fast: no store."""
from __future__ import annotations

import pytest
from gridpatrol.api.ogc import parse_bbox
from gridpatrol.gis.errors import InputError


def test_six_numbers_are_a_box_with_heights_and_the_heights_are_ignored():
    assert parse_bbox("104.05,30.65,-10,104.09,30.69,250") == (104.05, 30.65, 104.09, 30.69)
    assert parse_bbox(" 104.05 , 30.65 , 104.09 , 30.69 ") == (104.05, 30.65, 104.09, 30.69)


def test_the_whole_world_edges_included_is_a_bbox():
    assert parse_bbox("-180,-90,180,90") == (-180, -90, 180, 90)


@pytest.mark.parametrize("text", ["-180,-90,180,90.5", "-180,-90.5,180,90", "-180.5,-90,180,90", "-180,-90,180.5,90",
                                  "500000,3390000,510000,3400000"])
def test_a_box_beyond_the_degrees_is_refused_with_the_hint_to_send_crs84(text):
    with pytest.raises(InputError) as e:
        parse_bbox(text)
    assert str(e.value).startswith(f"bbox {text!r} is outside longitude −180…180 / latitude −90…90")
    assert e.value.hint == "give WGS-84 longitude/latitude (CRS84), not projected coordinates"


def test_words_are_refused_saying_what_a_bbox_is():
    with pytest.raises(InputError, match=r"^bbox must be 4 numbers minlon,minlat,maxlon,maxlat; got 'a,b,c,d'$"):
        parse_bbox("a,b,c,d")


def test_a_box_across_the_antimeridian_is_refused_with_the_hint_to_split_it():
    with pytest.raises(InputError) as e:
        parse_bbox("170,10,-170,20")
    assert str(e.value).startswith("bbox '170,10,-170,20' has min longitude 170.0 > max longitude -170.0")
    assert "split a box across ±180° into two requests" in e.value.hint
