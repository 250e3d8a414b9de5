-- endolite schema, version 3: annotator benchmarks (gold standard vs annotators).
-- One task per (benchmark, user, frame) for the gold annotator and every evaluated annotator.

CREATE SEQUENCE seq_benchmarks START 1;
CREATE TABLE benchmarks (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_benchmarks'),
    name VARCHAR NOT NULL,
    gold VARCHAR NOT NULL,
    label_ids BIGINT[] NOT NULL,
    iou_threshold DOUBLE NOT NULL DEFAULT 0.5,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR
);

CREATE TABLE benchmark_tasks (
    benchmark_id BIGINT NOT NULL,
    annotator VARCHAR NOT NULL,
    frame_id BIGINT NOT NULL,
    status VARCHAR NOT NULL DEFAULT 'todo',      -- todo | in_progress | complete
    updated_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    PRIMARY KEY (benchmark_id, annotator, frame_id)
);

CREATE SEQUENCE seq_benchmark_runs START 1;
CREATE TABLE benchmark_runs (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_benchmark_runs'),
    benchmark_id BIGINT NOT NULL,
    iou_threshold DOUBLE NOT NULL,
    summary VARCHAR NOT NULL,                    -- JSON: per-annotator summary rows
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR
);
