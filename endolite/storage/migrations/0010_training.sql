-- endolite schema, version 10: training runs, their metrics, model predictions and the
-- decisions people take on what a model suggests.  See docs/TRAINING.md for the run directory.
--
-- training_runs: one row per run.  ``status``: queued | running | done | failed | cancelled.
--   ``labels`` / ``label_ids``: JSON lists (same order: the model's output order).  ``config``:
--   the run's options (JSON); ``dataset``: per-split counts and warnings (JSON); ``run_dir``:
--   relative to the data directory (models/run_<id>).  ``worker_pid``/``worker_host``: the
--   worker process (or torchrun launcher) while it runs; ``owner``: the app process that
--   started it (jobs.process_owner) so a restarted dashboard can tell its own runs.
--   ``result``: the worker's result.json (best epoch, test metrics, confusion).
CREATE SEQUENCE seq_training_runs START 1;
CREATE TABLE training_runs (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_training_runs'),
    status VARCHAR NOT NULL,
    backbone VARCHAR NOT NULL,
    labels VARCHAR NOT NULL,
    label_ids VARCHAR NOT NULL,
    config VARCHAR NOT NULL DEFAULT '{}',
    dataset VARCHAR NOT NULL DEFAULT '{}',
    run_dir VARCHAR NOT NULL,
    nproc INTEGER NOT NULL DEFAULT 1,
    worker_pid INTEGER,
    worker_host VARCHAR,
    owner VARCHAR,
    progress DOUBLE NOT NULL DEFAULT 0,
    message VARCHAR NOT NULL DEFAULT '',
    error VARCHAR,
    best_epoch INTEGER,
    best_val_macro_f1 DOUBLE,
    result VARCHAR NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp()
);

-- One value per run, epoch, split (train | val | test), label name ('' = over all labels:
-- loss, macro_f1, images_per_s, ...) and metric (precision, recall, f1, auroc, ap, support,
-- loss, macro_f1, tp, fp, tn, fn, ...).  NULL value: undefined (e.g. AUROC without positives).
CREATE TABLE training_metrics (
    run_id BIGINT NOT NULL,
    epoch INTEGER NOT NULL,
    split VARCHAR NOT NULL,
    label VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    value DOUBLE
);
CREATE INDEX idx_training_metrics ON training_metrics (run_id, epoch);

-- A prediction pass of a run over one video (every ``every``-th frame) or image group.
CREATE SEQUENCE seq_prediction_sets START 1;
CREATE TABLE prediction_sets (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_prediction_sets'),
    run_id BIGINT NOT NULL,
    video_id BIGINT,
    group_id BIGINT,
    every INTEGER NOT NULL DEFAULT 1,
    frames BIGINT NOT NULL DEFAULT 0,
    fps DOUBLE,                      -- frames per second the pass ran at
    precision VARCHAR,               -- float32 | bfloat16 | ...
    job_id BIGINT,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp(),
    created_by VARCHAR
);

-- Predicted probability per frame and label: information source "model", the run that made it.
-- ``frame_number``: the video's decoded frame index (0-based) or the group frame's number;
-- ``frame_id``: the extracted frame at that position, when there is one.
CREATE TABLE predictions (
    set_id BIGINT NOT NULL,
    run_id BIGINT NOT NULL,
    video_id BIGINT,
    group_id BIGINT,
    frame_number BIGINT NOT NULL,
    frame_id BIGINT,
    label_id BIGINT NOT NULL,
    probability REAL NOT NULL,
    source VARCHAR NOT NULL DEFAULT 'model'
);
CREATE INDEX idx_predictions_video ON predictions (video_id, frame_number);
CREATE INDEX idx_predictions_frame ON predictions (frame_id);

-- Segments found in a prediction set (hysteresis over the smoothed probabilities),
-- [start_frame, end_frame) like segments.  ``status``: proposed | accepted | rejected;
-- accepting creates a row in ``segments`` (``segment_id``).
CREATE SEQUENCE seq_predicted_segments START 1;
CREATE TABLE predicted_segments (
    id BIGINT PRIMARY KEY DEFAULT nextval('seq_predicted_segments'),
    set_id BIGINT NOT NULL,
    run_id BIGINT NOT NULL,
    video_id BIGINT NOT NULL,
    label_id BIGINT NOT NULL,
    start_frame BIGINT NOT NULL,
    end_frame BIGINT NOT NULL,
    mean_probability DOUBLE NOT NULL,
    status VARCHAR NOT NULL DEFAULT 'proposed',
    segment_id BIGINT,
    decided_by VARCHAR,
    decided_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp()
);

-- What a person decided about a model's suggestion on one frame and label:
-- kind 'suggestion' (predicted frame label: accepted | rejected) or 'mislabel' (a likely
-- mislabel a lead reviewed: confirmed | dismissed).
CREATE TABLE model_decisions (
    kind VARCHAR NOT NULL,
    run_id BIGINT NOT NULL,
    frame_id BIGINT NOT NULL,
    label_id BIGINT NOT NULL,
    decision VARCHAR NOT NULL,
    decided_by VARCHAR NOT NULL,
    decided_at TIMESTAMP NOT NULL DEFAULT current_localtimestamp()
);
CREATE INDEX idx_model_decisions ON model_decisions (frame_id);
