-- endolite schema, version 8: segments are [start_frame, end_frame), end exclusive, as in
-- lx-annotate.  Segments stored before were inclusive [start_frame, end_frame]; shifting their
-- end by one keeps the frames they cover.
UPDATE segments SET end_frame = end_frame + 1;
