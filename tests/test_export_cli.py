"""``endolite export``: the zip lands at --out; the gate's refusal exits 1 with the reason."""

from __future__ import annotations

import zipfile

from endolite.cli import main
from endolite.extract import extract_frames
from endolite.frame_labels import set_frame_labels
from endolite.ingest import ingest_paths
from endolite.records import Presence
from endolite.storage import labels
from endolite.synthetic import write_disc_video
from tests.export_support import mark_anonymized


def test_export_cli_writes_the_zip_and_refuses_raw_media(con, settings, tmp_path, capsys):
    ids = [ingest_paths(con, settings, [write_disc_video(tmp_path / f"{n}.mp4", 12, seed=n)],
                        user="t")[0].id for n in (0, 1)]
    for vid in ids:
        (fr, *_) = extract_frames(con, settings, vid, method="uniform", count=2, context=0).picked
        if vid == ids[0]:
            labels.add(con, "polyp")
        set_frame_labels(con, fr.id, [("polyp", Presence.PRESENT, None)], annotator="ann")
    mark_anonymized(con, settings, video_id=ids[0])
    con.close()
    data = ["--data", str(settings.data_dir)]
    out = tmp_path / "out" / "lx.zip"
    assert main([*data, "export", "--format", "lx-csv", "--out", str(out), "--video", str(ids[0]),
                 "--frames"]) == 0
    with zipfile.ZipFile(out) as zf:
        assert "annotations.csv" in zf.namelist()
        assert any(n.startswith(f"frames/video_{ids[0]}/") for n in zf.namelist())
    capsys.readouterr()
    refused = tmp_path / "refused.zip"
    assert main([*data, "export", "--format", "lx-csv", "--out", str(refused),
                 "--video", str(ids[0]), "--video", str(ids[1])]) == 1
    err = capsys.readouterr().err
    assert f"video {ids[1]}: not anonymized" in err
    assert not refused.exists()


def test_every_format_exports_from_the_cli(con, settings, tmp_path):
    from endolite import annotate
    from endolite.synthetic import disc_mask

    vid = ingest_paths(con, settings, [write_disc_video(tmp_path / "v.mp4", 12, seed=3)],
                       user="t")[0].id
    frames = extract_frames(con, settings, vid, method="uniform", count=3, context=0).picked
    labels.add(con, "polyp")
    for fr in frames:
        set_frame_labels(con, fr.id, [("polyp", Presence.PRESENT, None)], annotator="ann")
        annotate.save_mask(con, settings, annotate.NewMask(
            fr.id, disc_mask(fr.height, fr.width, fr.width / 2, fr.height / 2, 12)),
            label="polyp", annotator="ann")
    mark_anonymized(con, settings, video_id=vid)
    con.close()
    expected = {"lx-csv": "annotations.csv", "lx-json": "annotations.json",
                "ai-dataset": "ai_dataset.json", "coco": "annotations/instances.json",
                "yolo": "data.yaml", "visual-layer": "visual_layer.json"}
    for fmt, member in expected.items():
        out = tmp_path / f"{fmt}.zip"
        extra = ["--yolo-task", "segment"] if fmt == "yolo" else []
        assert main(["--data", str(settings.data_dir), "export", "--format", fmt, "--out", str(out),
                     "--video", str(vid), "--frames", *extra]) == 0, fmt
        with zipfile.ZipFile(out) as zf:
            names = zf.namelist()
            assert member in names and "manifest.json" in names, (fmt, names)
            if fmt == "yolo":
                label_files = [n for n in names if n.startswith("labels/") and n.endswith(".txt")]
                first = zf.read(label_files[0]).decode().split()
                assert len(first) > 5, "segment task: class + polygon points"
