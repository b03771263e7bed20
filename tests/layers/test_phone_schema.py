"""Schema version 9 on both stores: a store made before it gets the report-key and photo tables on opening,
and the key is unique per reporter in the database itself."""
from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from tests.migration_helpers import reopen_as_upgraded


def test_an_older_store_gets_the_report_tables_and_a_unique_key(store_url):
    from gridpatrol.layers import incidents
    from gridpatrol.layers.models import IncidentReport
    from gridpatrol.layers.store import open_store

    def as_version_6(c):  # noqa: ANN001, ANN202
        c.execute(text("DROP TABLE incident_photos"))
        c.execute(text("DROP TABLE incident_reports"))

    s = reopen_as_upgraded(open_store(store_url), store_url, 6, as_version_6)
    try:
        with s.engine.connect() as c:
            tables = set(inspect(c).get_table_names())
        assert {"incident_reports", "incident_photos"} <= tables
        iid = incidents.create_incident(s, lon=104.06, lat=30.66, category="治安")["id"]
        row = {"reporter": "wu", "client_key": "k-1", "incident_id": iid}
        with s.begin() as c:
            c.execute(IncidentReport.__table__.insert().values(**row))
        with pytest.raises(IntegrityError), s.begin() as c:
            c.execute(IncidentReport.__table__.insert().values(**row))
        with s.begin() as c:  # another worker's key of the same text is theirs
            c.execute(IncidentReport.__table__.insert().values(**{**row, "reporter": "li"}))
    finally:
        s.dispose()
