"""The training dataset (endolite.train.dataset) on a real project: label vectors and masks from
frame labels, segments and masks; conflicts refused naming frame and label; treat unlabeled as
negative; the split by video / image group; per-split counts, warnings, class weights; the
manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from endolite import annotate
from endolite.errors import InvalidInput
from endolite.extract import extract_frames
from endolite.ingest import ingest_paths
from endolite.media import write_image_atomic
from endolite.records import LabelKind, Presence
from endolite.storage import annotations, labels, media
from endolite.synthetic import write_disc_video
from endolite.train import dataset as ds


def _label(con, frame, name, value, annotator="ann"):
    label = labels.get_by_name(con, name)
    annotations.set_frame_label(con, frame_id=frame.id, video_id=frame.video_id,
                                frame_number=frame.frame_number, label_id=label.id,
                                annotator=annotator, value=value)


def _group(con, settings, folder: Path, count: int, seed: int = 0):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        write_image_atomic(folder / f"img{i}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
                           fmt="png")
    [group] = ingest_paths(con, settings, [folder], user="t")
    return media.frames_of(con, group_id=group.id)


@pytest.fixture
def project(con, settings, tmp_path):
    """One 30-frame video with 6 extracted frames, one image group of 3, labels polyp / blood."""
    [video] = ingest_paths(con, settings, [write_disc_video(tmp_path / "v.mp4", 30, gop=10)], user="t")
    extract_frames(con, settings, video.id, method="uniform", count=6, context=0)
    labels.add(con, "polyp", kind=LabelKind.PATHOLOGY)
    labels.add(con, "blood", kind=LabelKind.PATHOLOGY)
    labels.add(con, "other", kind=LabelKind.OTHER)
    frames = sorted(media.frames_of(con, video_id=video.id), key=lambda f: f.frame_number)
    group = _group(con, settings, tmp_path / "g", 3)
    return video.id, frames, group


def _by_frame(dataset):
    return {r.frame_id: r for r in dataset.rows}


def test_vectors_and_masks_come_from_frame_labels_segments_and_masks(con, settings, project):
    video_id, frames, group = project
    f = frames
    _label(con, f[0], "polyp", Presence.PRESENT)
    _label(con, f[0], "polyp", Presence.PRESENT, annotator="bob")      # agreement: one present
    _label(con, f[1], "polyp", Presence.ABSENT)
    _label(con, f[1], "blood", Presence.UNKNOWN)
    polyp = labels.get_by_name(con, "polyp")
    # a segment covering f[2] and f[3] ([start, end): f[4]'s number is the end, not covered)
    annotations.add_segment(con, video_id=video_id, label_id=polyp.id,
                            start_frame=f[2].frame_number, end_frame=f[4].frame_number,
                            annotator="ann")
    gone = annotations.add_segment(con, video_id=video_id, label_id=polyp.id,
                                   start_frame=f[5].frame_number, end_frame=f[5].frame_number + 1,
                                   annotator="ann")
    annotations.delete_segment(con, gone.id)
    disc = np.zeros((144, 192), bool)
    disc[10:40, 10:40] = True
    annotate.save_mask(con, settings, annotate.NewMask(f[4].id, disc), label="blood", annotator="ann")
    deleted = annotate.save_mask(con, settings, annotate.NewMask(f[5].id, disc), label="blood",
                                 annotator="ann")
    annotate.delete_masks(con, [deleted.id], by="ann")
    small = np.zeros((32, 32), bool)
    small[2:9, 2:9] = True
    annotate.save_mask(con, settings, annotate.NewMask(group[1].id, small), label="blood",
                       annotator="bob")
    _label(con, group[2], "other", Presence.PRESENT)                   # not a chosen label

    data = ds.build(con, ["polyp", "blood"])
    rows = _by_frame(data)
    assert data.labels == ("polyp", "blood")
    assert set(rows) == {f[0].id, f[1].id, f[2].id, f[3].id, f[4].id, group[1].id}, \
        "frames with a known value of a chosen label only (deleted segment / mask: nothing)"
    assert (rows[f[0].id].y, rows[f[0].id].known) == ((1, 0), (1, 0))
    assert (rows[f[1].id].y, rows[f[1].id].known) == ((0, 0), (1, 0)), "unknown stays unknown"
    assert (rows[f[2].id].y, rows[f[2].id].known) == ((1, 0), (1, 0))
    assert (rows[f[3].id].y, rows[f[3].id].known) == ((1, 0), (1, 0))
    assert (rows[f[4].id].y, rows[f[4].id].known) == ((0, 1), (0, 1)), "segment end is exclusive"
    assert (rows[group[1].id].y, rows[group[1].id].known) == ((0, 1), (0, 1))
    assert rows[group[1].id].media == f"group:{group[1].group_id}"
    assert rows[f[0].id].media == f"video:{video_id}"
    assert rows[f[0].id].path == f[0].path


def test_conflicting_values_are_refused_naming_frame_and_label(con, settings, project):
    video_id, f, _ = project
    _label(con, f[0], "polyp", Presence.PRESENT, annotator="ann")
    _label(con, f[0], "polyp", Presence.ABSENT, annotator="bob")
    _label(con, f[1], "polyp", Presence.PRESENT)
    with pytest.raises(InvalidInput) as err:
        ds.build(con, ["polyp"])
    text = str(err.value)
    assert f"frame {f[0].id}, label 'polyp'" in text
    assert "frame label by ann" in text and "frame label by bob" in text
    assert f"frame {f[1].id}" not in text

    summary = ds.build(con, ["polyp"], strict=False).summary       # the preview lists it
    [conflict] = summary.conflicts
    assert (conflict.frame_id, conflict.label) == (f[0].id, "polyp")
    assert summary.frames == 1, "the conflicting entry is unknown, so frame 0 has nothing known"
    assert any(f"frame {f[0].id}" in w for w in summary.warnings)

    # a segment against an 'absent' frame label is a conflict too
    _label(con, f[0], "polyp", Presence.PRESENT, annotator="bob")
    polyp = labels.get_by_name(con, "polyp")
    _label(con, f[2], "polyp", Presence.ABSENT)
    annotations.add_segment(con, video_id=video_id, label_id=polyp.id,
                            start_frame=f[2].frame_number, end_frame=f[2].frame_number + 1,
                            annotator="carl")
    with pytest.raises(InvalidInput, match=f"frame {f[2].id}, label 'polyp'.*segment .* by carl"):
        ds.build(con, ["polyp"])


def test_treat_unlabeled_as_negative(con, settings, project, tmp_path):
    _, f, group = project
    other_group = _group(con, settings, tmp_path / "g2", 2, seed=5)
    _label(con, f[0], "polyp", Presence.PRESENT)
    _label(con, f[1], "blood", Presence.UNKNOWN)
    _label(con, group[0], "blood", Presence.ABSENT)

    plain = _by_frame(ds.build(con, ["polyp", "blood"]))
    assert set(plain) == {f[0].id, group[0].id}
    assert plain[f[0].id].known == (1, 0)

    data = ds.build(con, ["polyp", "blood"], treat_unlabeled_as_negative=True)
    rows = _by_frame(data)
    assert set(rows) == {fr.id for fr in f} | {fr.id for fr in group}, \
        "all frames of the media concerned; the unlabeled group is not concerned"
    assert not {fr.id for fr in other_group} & set(rows)
    assert (rows[f[0].id].y, rows[f[0].id].known) == ((1, 0), (1, 1))
    assert (rows[f[1].id].y, rows[f[1].id].known) == ((0, 0), (1, 0)), \
        "an explicit 'unknown' stays unknown"
    assert (rows[f[3].id].y, rows[f[3].id].known) == ((0, 0), (1, 1))
    assert (rows[group[2].id].y, rows[group[2].id].known) == ((0, 0), (1, 1))


def test_unknown_or_repeated_labels_are_refused(con, project):
    with pytest.raises(InvalidInput, match="no label named 'nope'"):
        ds.build(con, ["polyp", "nope"])
    with pytest.raises(InvalidInput, match="polyp named twice"):
        ds.build(con, ["polyp", "polyp"])
    with pytest.raises(InvalidInput, match="at least one label"):
        ds.build(con, [])


# --- the split --------------------------------------------------------------------------------

def test_split_by_media_is_seeded_whole_media_and_keeps_train():
    keys = [f"video:{i}" for i in range(1, 18)] + [f"group:{i}" for i in range(1, 4)]
    first = ds.split_by_media(keys, val=0.2, test=0.1, seed=42)
    assert first == ds.split_by_media(list(reversed(keys)) + keys[:3], val=0.2, test=0.1, seed=42), \
        "same keys, any order, repeats ignored: same split"
    assert set(first) == set(keys)
    counts = {s: sum(1 for v in first.values() if v == s) for s in ds.SPLITS}
    assert counts == {"train": 14, "val": 4, "test": 2}
    assignments = [ds.split_by_media(keys, seed=seed) for seed in range(40)]
    assert len({tuple(sorted(a.items())) for a in assignments}) > 30, "the seed changes the split"
    for a in assignments:
        assert sorted(a) == sorted(keys) and set(a.values()) == {"train", "val", "test"}

    assert ds.split_by_media([]) == {}
    assert ds.split_by_media(["video:1"]) == {"video:1": "train"}
    two = ds.split_by_media(["video:1", "video:2"])
    assert sorted(two.values()) == ["train", "val"]
    three = ds.split_by_media(["video:1", "video:2", "group:1"])
    assert sorted(three.values()) == ["test", "train", "val"]
    assert set(ds.split_by_media(["video:1", "video:2"], val=0.0, test=0.0).values()) == {"train"}
    for n in range(1, 12):
        got = ds.split_by_media([f"video:{i}" for i in range(n)], val=0.5, test=0.4)
        assert "train" in got.values(), f"{n} media: at least one in train"
    with pytest.raises(InvalidInput, match="add up to less than 1"):
        ds.split_by_media(keys, val=0.6, test=0.4)


def test_rows_of_one_medium_share_a_split_for_many_seeds(con, settings, project, tmp_path):
    _, f, group = project
    more = [_group(con, settings, tmp_path / f"g{i}", 2, seed=10 + i) for i in range(5)]
    for fr in f + group + [fr for g in more for fr in g]:
        _label(con, fr, "polyp", Presence.PRESENT if fr.id % 2 else Presence.ABSENT)
    for seed in range(25):
        data = ds.build(con, ["polyp"], seed=seed)
        by_media: dict[str, set[str]] = {}
        for r in data.rows:
            by_media.setdefault(r.media, set()).add(r.split)
        assert all(len(s) == 1 for s in by_media.values()), f"seed {seed}: a medium in two splits"
        assert len(by_media) == 7
        assert data.summary.split_media == {"train": 5, "val": 1, "test": 1}   # 7 media: 1.4 -> 1, 0.7 -> 1
        assert sum(data.summary.split_frames.values()) == len(data.rows) == 6 + 3 + 10
    assert ds.build(con, ["polyp"], seed=3).rows == ds.build(con, ["polyp"], seed=3).rows


# --- counts, warnings, weights, manifest -------------------------------------------------------

def test_counts_warnings_and_class_weights_per_split(con, settings, project, tmp_path):
    _, f, group = project
    for fr in f:
        _label(con, fr, "polyp", Presence.PRESENT if fr.frame_number < 10 else Presence.ABSENT)
    for fr in group:
        _label(con, fr, "polyp", Presence.ABSENT)
        _label(con, fr, "blood", Presence.PRESENT)
    data = ds.build(con, ["polyp", "blood"], val_fraction=0.5, test_fraction=0.0, seed=1)
    s = data.summary
    split_of = s.options["split"]
    train_media = [m for m, v in split_of.items() if v == "train"]
    assert len(train_media) == 1 and s.split_media == {"train": 1, "val": 1, "test": 0}
    video_polyp = sum(1 for fr in f if fr.frame_number < 10)
    if train_media == [f"video:{f[0].video_id}"]:
        train, val = s.counts["train"], s.counts["val"]
        assert train["polyp"] == {"positive": video_polyp, "negative": 6 - video_polyp, "unknown": 0}
        assert train["blood"] == {"positive": 0, "negative": 0, "unknown": 6}
        assert val["blood"] == {"positive": 3, "negative": 0, "unknown": 0}
        assert s.class_weights[1] == 1.0, "no positives in train: weight 1"
        assert any(w.startswith("blood: no positive frame in train") for w in s.warnings)
    else:
        train = s.counts["train"]
        assert train["polyp"] == {"positive": 0, "negative": 3, "unknown": 0}
        assert train["blood"] == {"positive": 3, "negative": 0, "unknown": 0}
        assert any(w.startswith("blood: no negative frame in train") for w in s.warnings)
        assert s.class_weights[1] == round(1 / ds.WEIGHT_CAP, 4)
    assert any("only" in w and "validation (fewer than 5)" in w for w in s.warnings)
    table = s.table()
    assert [r["label"] for r in table] == ["polyp", "blood"]
    assert table[0]["train +"] + table[0]["validation +"] == video_polyp
    json.dumps(s.to_dict())          # storable


def test_class_weights_are_neg_over_pos_capped():
    counts = {"train": {"a": {"positive": 2, "negative": 6, "unknown": 0},
                        "b": {"positive": 1, "negative": 50, "unknown": 3},
                        "c": {"positive": 0, "negative": 9, "unknown": 0}}}
    assert ds.class_weights(counts, ["a", "b", "c"]) == (3.0, 10.0, 1.0)
    assert ds.class_weights(counts, ["b"], cap=20) == (20.0,)


def test_manifest_has_absolute_paths_labels_and_splits(con, settings, project, tmp_path):
    _, f, group = project
    _label(con, f[0], "polyp", Presence.PRESENT)
    _label(con, group[0], "blood", Presence.PRESENT)
    data = ds.build(con, ["blood", "polyp"])
    path = ds.write_manifest(tmp_path / "run" / "manifest.json", data, settings)
    doc = json.loads(path.read_text())
    assert doc["labels"] == ["blood", "polyp"]
    assert len(doc["rows"]) == 2
    for row in doc["rows"]:
        assert Path(row["path"]).is_absolute() and Path(row["path"]).is_file()
        assert str(settings.data_dir) in row["path"]
        assert row["split"] in ds.SPLITS and set(row) == {"frame_id", "path", "media", "split",
                                                          "y", "known"}
    by_id = {r["frame_id"]: r for r in doc["rows"]}
    assert (by_id[f[0].id]["y"], by_id[f[0].id]["known"]) == ([0, 1], [0, 1])
    assert (by_id[group[0].id]["y"], by_id[group[0].id]["known"]) == ([1, 0], [1, 0])
