"""Migrations on a database written by an older endolite: data is carried over, not lost."""

from __future__ import annotations

import duckdb

from endolite.storage import db


def test_0008_keeps_the_frames_of_segments_stored_with_inclusive_ends(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                "applied_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp())")
    for version, name, sql in db._migrations():
        if version < 8:                                   # the schema of the previous release
            con.execute(sql)
            con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, name])
    # before version 8 a segment [10, 19] covered frames 10..19 (end inclusive)
    con.execute("INSERT INTO segments (video_id, label_id, start_frame, end_frame, annotator) "
                "VALUES (1, 1, 10, 19, 'ann')")
    assert db.migrate(con)[0] == 8
    assert con.execute("SELECT start_frame, end_frame FROM segments").fetchone() == (10, 20)
    assert db.migrate(con) == []                          # applied once only
    assert con.execute("SELECT end_frame FROM segments").fetchone() == (20,)
