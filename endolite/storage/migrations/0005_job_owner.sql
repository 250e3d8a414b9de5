-- endolite schema, version 5: which process runs a job.
-- ``owner`` is a token of the process that created the job (host:pid:random).  When a process
-- opens the database read-write, a queued or running job owned by any other process belongs
-- to a process that has stopped (DuckDB allows one writing process per file), so it is marked
-- failed ("interrupted").  Rows from before this version have owner NULL.

ALTER TABLE jobs ADD COLUMN owner VARCHAR;
