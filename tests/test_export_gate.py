"""The export gate and the zip: only validated, unchanged anonymized media leave, as a zip that
holds what its metadata names; encryption to an age recipient; the service's audit trail."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from pycocotools.coco import COCO

from endolite import annotate
from endolite.errors import ExportRefused, InvalidInput, PermissionDenied
from endolite.export import gate
from endolite.export.formats import ExportOptions
from endolite.extract import extract_frames
from endolite.frame_labels import set_frame_labels
from endolite.ingest import ingest_paths
from endolite.records import Presence, Role
from endolite.services import Actor, Ctx
from endolite.services import exports
from endolite.storage import anonymizations as anon
from endolite.storage import audit, labels
from endolite.synthetic import disc_mask, write_disc_video
from tests.export_support import mark_anonymized


def _ingest(con, settings, path) -> int:
    result = ingest_paths(con, settings, [path], user="t")[0]
    assert result.id is not None, result.reason
    return result.id


@pytest.fixture
def project(con, settings, tmp_path):
    """Video 1 validated (4 frames, labels + a mask); video 2 anonymized only; video 3 raw."""
    v1 = _ingest(con, settings, write_disc_video(tmp_path / "Mueller_Hans.mp4", 20, seed=0))
    v2 = _ingest(con, settings, write_disc_video(tmp_path / "two.mp4", 12, seed=1))
    v3 = _ingest(con, settings, write_disc_video(tmp_path / "three.mp4", 12, seed=2))
    f = extract_frames(con, settings, v1, method="uniform", count=4, context=0).picked
    g = extract_frames(con, settings, v2, method="uniform", count=2, context=0).picked
    extract_frames(con, settings, v3, method="uniform", count=2, context=0)
    labels.add(con, "polyp")
    set_frame_labels(con, f[0].id, [("polyp", Presence.PRESENT, None)], annotator="ann")
    set_frame_labels(con, f[1].id, [("polyp", Presence.ABSENT, None)], annotator="ann")
    set_frame_labels(con, g[0].id, [("polyp", Presence.PRESENT, None)], annotator="ann")
    mask = disc_mask(f[2].height, f[2].width, f[2].width / 2, f[2].height / 2, 10)
    annotate.save_mask(con, settings, annotate.NewMask(frame_id=f[2].id, mask=mask),
                       label="polyp", annotator="ann")
    mark_anonymized(con, settings, video_id=v1)
    mark_anonymized(con, settings, video_id=v2, validate=False)
    lead = Ctx(con=con, settings=settings, actor=Actor("lena", Role.LEAD))
    return SimpleNamespace(con=con, settings=settings, v1=v1, v2=v2, v3=v3, f=f, g=g, lead=lead,
                           mask=mask)


def _zip(record, settings) -> zipfile.ZipFile:
    return zipfile.ZipFile(settings.absolute(record.path))


def test_gate_approves_a_validated_video_with_its_blanked_frames(project):
    p = project
    plan = gate.approve(p.con, p.settings, video_ids=[p.v1])
    assert plan.video_ids == (p.v1,)
    assert [fr.frame_id for fr in plan.frames] == [fr.id for fr in p.f]
    for fr in plan.frames:
        assert fr.source.parent == p.settings.anonymized_media_dir(video_id=p.v1)
        assert fr.arcname == f"frames/video_{p.v1}/frame_{fr.frame_id}.jpg"


@pytest.mark.parametrize("which,reason", [("v2", "not validated"), ("v3", "not anonymized"),
                                          (999, "no such video")])
def test_gate_refuses_media_not_validated_naming_them(project, which, reason):
    p = project
    vid = getattr(p, which) if isinstance(which, str) else which
    with pytest.raises(ExportRefused, match=f"video {vid}: .*{reason}"):
        gate.approve(p.con, p.settings, video_ids=[p.v1, vid])


def test_gate_refuses_a_rejected_video_with_the_leads_reason(project):
    p = project
    anon.decide(p.con, video_id=p.v2, validated=False, reason="name visible at 0:12",
                decided_by="lena")
    with pytest.raises(ExportRefused, match="rejected by lena: name visible at 0:12"):
        gate.approve(p.con, p.settings, video_ids=[p.v2])


def test_gate_refuses_a_file_changed_after_validation(project):
    p = project
    row = anon.get(p.con, video_id=p.v1)
    with open(p.settings.absolute(row.path), "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ExportRefused, match=f"video {p.v1}: the anonymized file changed"):
        gate.approve(p.con, p.settings, video_ids=[p.v1])


def test_re_anonymizing_clears_validation_and_the_gate_refuses(project):
    p = project
    mark_anonymized(p.con, p.settings, video_id=p.v1, validate=False)
    with pytest.raises(ExportRefused, match="not validated"):
        gate.approve(p.con, p.settings, video_ids=[p.v1])


def test_gate_refuses_frames_extracted_after_anonymization_without_a_blanked_copy(project):
    p = project
    p.con.execute("DELETE FROM anonymized_frames WHERE frame_id = ?", [p.f[3].id])
    with pytest.raises(ExportRefused, match="1 frame\\(s\\) have no anonymized copy"):
        gate.approve(p.con, p.settings, video_ids=[p.v1])


def test_nothing_chosen_is_refused(project):
    with pytest.raises(ExportRefused, match="choose at least one"):
        gate.approve(project.con, project.settings)


def test_lx_csv_zip_with_frames_and_video(project):
    p = project
    rec = exports.export(p.lead, "lx-csv", video_ids=[p.v1],
                         options=ExportOptions(frames=True, videos=True))
    with _zip(rec, p.settings) as zf:
        names = set(zf.namelist())
        rows = list(csv.DictReader(io.StringIO(zf.read("annotations.csv").decode())))
        assert [r["value"] for r in rows] == ["True", "False"]
        for r in rows:
            member = f"frames/video_{p.v1}/{r['frame_relative_path']}"
            assert member in names
            blanked = p.settings.anonymized_media_dir(video_id=p.v1) / r["frame_relative_path"]
            assert zf.read(member) == blanked.read_bytes()
        assert f"videos/video_{p.v1}.mp4" in names
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["video_ids"] == [p.v1] and manifest["counts"]["annotations"] == 2
        blob = b"".join(zf.read(n) for n in names if not n.endswith((".jpg", ".mp4")))
    assert b"Mueller" not in blob                     # the uploaded name stays on the server
    assert rec.sha256 and rec.size_bytes == p.settings.absolute(rec.path).stat().st_size


def test_coco_zip_loads_in_pycocotools_and_names_zip_members(project, tmp_path):
    p = project
    rec = exports.export(p.lead, "coco", video_ids=[p.v1], options=ExportOptions(frames=True))
    with _zip(rec, p.settings) as zf:
        zf.extractall(tmp_path / "out")
    coco = COCO(str(tmp_path / "out" / "annotations" / "instances.json"))
    for image in coco.dataset["images"]:
        assert (tmp_path / "out" / "frames" / image["file_name"]).is_file()
    (ann,) = coco.dataset["annotations"]
    assert np.array_equal(coco.annToMask(ann).astype(bool), p.mask)
    png = tmp_path / "out" / "masks" / f"frame_{p.f[2].id}" / f"label_{ann['category_id']}.png"
    assert png.is_file()


def test_transcoded_lx_frames_come_from_the_anonymized_video(project):
    p = project
    rec = exports.export(p.lead, "lx-json", video_ids=[p.v1],
                         options=ExportOptions(transcode_fps=5.0))
    with _zip(rec, p.settings) as zf:
        rows = json.loads(zf.read("annotations.json"))
        names = set(zf.namelist())
    for r in rows:
        assert r["frame_relative_path"] == f"frame_{r['frame_number']:06d}.jpg"
        assert f"frames/video_{p.v1}/{r['frame_relative_path']}" in names
    # 20 frames at 25 fps, every 5th (0, 5, 10, 15) plus the annotated ones
    sampled = {f"frames/video_{p.v1}/frame_{n:06d}.jpg" for n in (0, 5, 10, 15)}
    assert sampled <= names


def test_export_with_no_rows_is_refused_and_leaves_no_file(project):
    p = project
    with pytest.raises(ExportRefused, match="no annotation rows"):
        exports.export(p.lead, "lx-csv", video_ids=[p.v1], options=ExportOptions(only="false",
                                                                               segment_ids=()))
    assert list(p.settings.exports_dir.glob("*")) == []
    assert list(p.settings.tmp_dir.glob("export-*")) == []
    entries = [e for e in audit.search(p.con) if e.action == "export.refused"]
    assert entries and "no annotation rows" in entries[0].details["reason"]


def test_a_frame_changed_after_the_gate_stops_the_export(project, monkeypatch):
    p = project
    real_approve = gate.approve

    def approve_then_tamper(*args, **kwargs):
        plan = real_approve(*args, **kwargs)
        with open(plan.frames[0].source, "ab") as fh:
            fh.write(b"patient name")
        return plan

    monkeypatch.setattr(gate, "approve", approve_then_tamper)
    with pytest.raises(ExportRefused, match=f"frame {p.f[0].id}: .*changed"):
        exports.export(p.lead, "lx-csv", video_ids=[p.v1], options=ExportOptions(frames=True))
    assert list(p.settings.exports_dir.glob("*")) == []


def test_annotators_may_not_export(project):
    p = project
    ann = Ctx(con=p.con, settings=p.settings, actor=Actor("ann", Role.ANNOTATOR))
    with pytest.raises(PermissionDenied):
        exports.export(ann, "lx-csv", video_ids=[p.v1])


def test_encrypted_export_opens_only_with_the_recipients_key(project):
    import pyrage

    p = project
    key, other = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    rec = exports.export(p.lead, "lx-csv", video_ids=[p.v1], options=ExportOptions(frames=True),
                         encrypt_to=str(key.to_public()))
    path = p.settings.absolute(rec.path)
    assert path.name.endswith(".zip.age") and rec.encrypted_to == str(key.to_public())
    blob = path.read_bytes()
    assert not blob.startswith(b"PK") and b"annotations.csv" not in blob
    with zipfile.ZipFile(io.BytesIO(pyrage.decrypt(blob, [key]))) as zf:
        assert "annotations.csv" in zf.namelist()
        assert zf.read("annotations.csv").startswith(b"annotation_id,")
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(blob, [other])


def test_a_bad_recipient_is_named_and_nothing_is_written(project):
    p = project
    with pytest.raises(InvalidInput, match="--encrypt-to: .*not an age X25519 public key"):
        exports.export(p.lead, "lx-csv", video_ids=[p.v1], encrypt_to="ssh-rsa AAAA")
    assert list(p.settings.exports_dir.glob("*")) == []


def test_the_export_is_recorded_and_audited(project):
    p = project
    rec = exports.export(p.lead, "lx-json", video_ids=[p.v1])
    assert exports.recent(p.lead)[0].id == rec.id
    (entry,) = [e for e in audit.search(p.con) if e.action == "export.write"]
    assert entry.username == "lena" and entry.details["sha256"] == rec.sha256


def test_frame_id_paths_ship_png_frames_as_real_jpegs(con, settings, tmp_path):
    from PIL import Image

    vid = _ingest(con, settings, write_disc_video(tmp_path / "p.mp4", 12, seed=4))
    (fr, *_) = extract_frames(con, settings, vid, method="uniform", count=2, context=0,
                              fmt="png").picked
    labels.add(con, "polyp")
    set_frame_labels(con, fr.id, [("polyp", Presence.PRESENT, None)], annotator="ann")
    mark_anonymized(con, settings, video_id=vid)
    lead = Ctx(con=con, settings=settings, actor=Actor("lena", Role.LEAD))
    rec = exports.export(lead, "lx-csv", video_ids=[vid],
                         options=ExportOptions(frames=True, frame_id_paths=True))
    with _zip(rec, settings) as zf:
        (row,) = list(csv.DictReader(io.StringIO(zf.read("annotations.csv").decode())))
        assert row["frame_relative_path"] == f"frame_{fr.id}.jpg"
        image = Image.open(io.BytesIO(zf.read(f"frames/video_{vid}/frame_{fr.id}.jpg")))
        assert image.format == "JPEG" and image.size == (fr.width, fr.height)
