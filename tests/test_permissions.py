"""The role matrix, enforced: every action of ``access.MATRIX`` is performed through the real
service function as an annotator, a lead and an admin (for *own* rules on the actor's own
record and on someone else's) against one real data directory with a small synthetic project.
An allowed call leaves an audit entry with the action's name and the actor; a refused one raises
PermissionDenied naming user, role and action, changes nothing in the affected tables, and
leaves a ``denied`` entry.  Plus: docs/PERMISSIONS.md carries the generated table, and the CLI's
``--user`` / shell user.
"""

from __future__ import annotations

import getpass
import io
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from endolite import annotate, frame_labels, auth
from endolite.annotate import NewMask
from endolite.benchmark import service as bench_core
from endolite.config import Settings
from endolite.errors import PermissionDenied
from endolite.ingest.upload import stage_upload
from endolite.media import encode_image
from endolite.records import Presence, Role
from endolite.segment import engine_for
from endolite.services import MATRIX, Action, Actor, Ctx, allowed
from endolite.services import annotations as annotations_service
from endolite.services import audit_log, benchmarks, labels, maintenance, masks, media, segmentation
from endolite.services import anonymization, coco_import, exports
from endolite.services import settings as settings_service
from endolite.services import mislabels as mislabel_service
from endolite.services import predictions as prediction_service
from endolite.services import tags as tags_service
from endolite.services import training as training_service
from endolite.services import users as users_service
from endolite.services.access import matrix_markdown
from endolite.storage import connect
from endolite.storage import labels as label_store
from endolite.storage import media as media_store
from endolite.storage import predictions as prediction_store
from endolite.storage import training as run_store
from endolite.storage import users as user_store
from endolite.synthetic import disc_mask, moving_disc_frames, write_disc_video

ROOT = Path(__file__).resolve().parents[1]
H, W = 60, 80                        # image-group frames; H != W
ACTORS = {Role.ANNOTATOR: "ann", Role.LEAD: "lena", Role.ADMIN: "root"}
OTHER = "bob"                        # an annotator whose records the "other" cases act on
# actions the matrix names that no service performs yet: a service for one must come with a case
PENDING: set[Action] = set()


def cheap_hash(password: str) -> str:
    return auth.hash_password(password, n=2**10)        # these tests are not about hashing


@dataclass
class Project:
    con: Any
    settings: Settings
    video_id: int
    video_frames: list[Any]          # extracted (labelable) frames of the video, in order
    truth: list[np.ndarray]          # the disc of every video frame
    frames: list[Any]                # image-group frames (grp_0.png ...)
    undo_frame: int                  # a frame only OTHER acts on
    bench_id: int
    passwords: dict[str, str]
    serial: itertools.count

    def ctx(self, name: str, role: Role) -> Ctx:
        return Ctx(con=self.con, settings=self.settings, actor=Actor(name=name, role=role))

    def n(self) -> int:
        return next(self.serial)

    def png(self, seed: int) -> bytes:
        rgb = np.random.default_rng(seed).integers(0, 255, size=(H, W, 3), dtype=np.uint8)
        return encode_image(rgb, fmt="png")

    def disc(self, seed: int = 0) -> np.ndarray:
        return disc_mask(H, W, 30 + seed % 20, 25, 9)


def _png_folder(folder: Path, stems: list[str], project_png) -> Path:
    folder.mkdir(parents=True)
    for i, stem in enumerate(stems):
        (folder / f"{stem}.png").write_bytes(project_png(1000 + i + hash(stem) % 1000))
    return folder


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """Training workers started here (and their torch) use one CPU thread."""
    monkeypatch.setenv("ENDOLITE_TRAIN_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    base = tmp_path_factory.mktemp("perm")
    settings = Settings.resolve(base / "data")
    con = connect(settings)
    passwords = {name: f"{name}-password-0" for name in [*ACTORS.values(), OTHER]}
    for name, role in [("root", Role.ADMIN), ("lena", Role.LEAD), ("ann", Role.ANNOTATOR),
                       (OTHER, Role.ANNOTATOR)]:
        user_store.add(con, name, role, cheap_hash(passwords[name]))
    shell = Ctx(con=con, settings=settings, actor=Actor.server_shell())
    p = Project(con=con, settings=settings, video_id=0, video_frames=[], truth=[], frames=[],
                undo_frame=0, bench_id=0, passwords=passwords, serial=itertools.count(1))

    video = write_disc_video(base / "disc.mp4", 30, gop=10)
    group = _png_folder(base / "grp", [f"grp_{i}" for i in range(3)], p.png)
    solo = _png_folder(base / "solo", ["solo_0"], p.png)
    results = media.import_server(shell, [video, group, solo])
    assert [r.status for r in results] == ["imported"] * 3, [r.reason for r in results]
    p.video_id = results[0].id
    p.frames = media_store.frames_of(con, group_id=results[1].id)
    p.undo_frame = media_store.frames_of(con, group_id=results[2].id)[0].id
    labels.add(shell, "polyp")
    p.video_frames = media.extract(shell, p.video_id, method="uniform", count=3, context=0).picked
    p.truth = [m for _, m in moving_disc_frames(30)]

    for who, frame in (("ann", p.frames[0]), (OTHER, p.frames[1])):     # masks by two annotators
        masks.save(p.ctx(who, Role.ANNOTATOR), NewMask(frame.id, p.disc()), label="polyp")
    annotations_service.add_segment(p.ctx(OTHER, Role.ANNOTATOR), p.video_id, label="polyp",
                                    start=2, end=6)
    p.bench_id = benchmarks.create(p.ctx("lena", Role.LEAD), name="bench", gold="lena",
                                   annotators=["ann", OTHER], labels=["polyp"],
                                   frame_ids=[f.id for f in p.frames]).id
    yield p
    con.close()


# --- one case per action ----------------------------------------------------------------------
#
# setup(p, owner) makes the record the action works on (owned by ``owner``) and returns what
# call(ctx, p, state) needs; ``tables`` are what a refusal must leave untouched.

@dataclass(frozen=True)
class Case:
    tables: tuple[str, ...]
    call: Callable[[Ctx, Project, Any], Any]
    setup: Callable[[Project, str], Any] = lambda p, owner: owner
    audited: bool = True             # reading the audit log is not itself an audited change
    files: Callable[[Any], Any] = lambda state: None     # what a refusal leaves on disk
    changes: bool = True             # an allowed call changes the tables / files (not a repeat)


def _core_mask(p: Project, owner: str):
    return annotate.save_mask(p.con, p.settings, NewMask(p.frames[2].id, p.disc(p.n())),
                              label="polyp", annotator=owner)


def _core_segment(p: Project, owner: str):
    return frame_labels.add_segment(p.con, p.video_id, label="polyp", start=0, end=3, annotator=owner)


def _bench_for_tasks(p: Project, owner: str) -> tuple[int, str]:
    bench = bench_core.create_benchmark(p.con, name=f"tasks {p.n()}", gold="lena",
                                        annotators=["ann", OTHER, "root"], labels=["polyp"],
                                        frame_ids=[p.frames[0].id])
    return bench.id, owner


def _bench_to_assign(p: Project, owner: str) -> int:
    return bench_core.create_benchmark(p.con, name=f"assign {p.n()}", gold="lena", annotators=["ann"],
                                       labels=["polyp"], frame_ids=[p.frames[0].id]).id


def _png_mirror_lost(p: Project, owner: str) -> Path:
    """A mask whose PNG mirror is gone: a problem check --repair fixes (rewrites it)."""
    m = _core_mask(p, OTHER)
    path = annotate.mask_png_path(p.settings, m.frame_id, m.id)
    path.unlink()
    return path


def _backup_dest(p: Project, owner: str) -> Path:
    return p.settings.data_dir.parent / "backups" / f"copy{p.n()}"


def _fresh_user(p: Project, owner: str) -> str:
    name = f"target{p.n()}"
    user_store.add(p.con, name, Role.ANNOTATOR, cheap_hash("target-password"))
    return name


def _fresh_label(p: Project, owner: str) -> str:
    return label_store.add(p.con, f"tag{p.n()}").name


def _staged(p: Project, owner: str) -> Path:
    n = p.n()
    return stage_upload(p.settings, f"up_{n}.png", io.BytesIO(p.png(n)))


def _in_inbox(p: Project, owner: str) -> Path:
    n = p.n()
    return _png_folder(settings_service.inbox(p.settings) / f"srv_{n}", [f"srv_{n}"], p.png)


def _mask_file(p: Project, owner: str) -> Path:
    folder = settings_service.inbox(p.settings) / f"maskfiles_{p.n()}"
    folder.mkdir()
    path = folder / "grp_1.png"
    path.write_bytes(encode_image((p.disc(3) * 255).astype(np.uint8), fmt="png"))
    return path


def _video_mask(p: Project, owner: str):
    start = p.video_frames[0]
    return annotate.save_mask(p.con, p.settings, NewMask(start.id, p.truth[start.frame_number]),
                              label="polyp", annotator=owner)


def _own_step(p: Project, owner: str):
    """The actor's own last action on a frame (own case), or only OTHER's (other case)."""
    if owner == OTHER:
        masks.save(p.ctx(OTHER, Role.ANNOTATOR), NewMask(p.undo_frame, p.disc(p.n())), label="polyp")
        return p.undo_frame
    actor_role = next(r for r, name in ACTORS.items() if name == owner)
    masks.save(p.ctx(owner, actor_role), NewMask(p.frames[2].id, p.disc(p.n())), label="polyp")
    return p.frames[2].id


def _change_password(ctx: Ctx, p: Project, _state) -> None:
    name = ctx.actor.name
    new = f"{name}-password-{p.n()}"
    users_service.change_password(ctx, p.passwords[name], new)
    p.passwords[name] = new


def _own_tag(p: Project, owner: str) -> tuple[int, str, str]:
    """A tag ``owner`` set on a group frame (removing it is the action)."""
    from endolite.storage import tags as tag_store

    tag = f"tag{p.n()}"
    tag_store.add(p.con, p.frames[0].id, tag, username=owner)
    return p.frames[0].id, tag, owner


def _validated_group(p: Project, owner: str) -> tuple[int, Path]:
    """The image group, with a validated anonymization recorded (once)."""
    from endolite.storage import anonymizations

    from tests.export_support import mark_anonymized

    del anonymizations
    group_id = p.frames[0].group_id
    mark_anonymized(p.con, p.settings, group_id=group_id)
    return group_id, p.settings.exports_dir


def _anonymized_group(p: Project, owner: str) -> int:
    """The image group, anonymized (a recorded copy) and waiting for a lead's decision."""
    from tests.export_support import mark_anonymized

    mark_anonymized(p.con, p.settings, group_id=p.frames[0].group_id, validate=False)
    return p.frames[0].group_id


def _coco_file(p: Project, owner: str) -> Path:
    """A COCO file from another tool: one box on grp_1.png (a new height each time: importing
    the same pixels again is skipped)."""
    frame = p.frames[1]
    doc = {"images": [{"id": 7, "file_name": "grp_1.png", "width": frame.width,
                       "height": frame.height}],
           "categories": [{"id": 1, "name": "polyp"}],
           "annotations": [{"id": 70 + p.n(), "image_id": 7, "category_id": 1,
                            "bbox": [5, 5, 20, 10 + p.n() % 30], "area": 200, "iscrowd": 0}]}
    path = p.settings.data_dir / "inbox" / f"coco{p.n()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _polyp_id(p: Project) -> int:
    return label_store.get_by_name(p.con, "polyp").id


def _run_row(p: Project, owner: str, status: run_store.RunStatus) -> run_store.TrainingRun:
    """A training_runs row over "polyp" (no worker, no files), in ``status``."""
    run = run_store.create_run(p.con, backbone="resnet18", labels=["polyp"],
                               label_ids=[_polyp_id(p)], config={}, dataset={}, created_by=owner)
    run_store.update_run(p.con, run.id, status=status, started=True,
                         finished=status in run_store.FINISHED)
    return run_store.get_run(p.con, run.id)


_TRAIN_LABELS = ["red", "green"]


def _train_data(p: Project, owner: str) -> Path:
    """A tiny labelled project (3 image groups of 2 colour images, frame labels red / green),
    made once; returns the models folder (what a refused start must leave as it is)."""
    from tests.test_train_runs import make_project

    if label_store.get_by_name(p.con, "red", missing_ok=True) is None:
        make_project(p.con, p.settings, p.settings.data_dir.parent / "train_pictures",
                     groups=3, per_group=2)
    return p.settings.absolute("models")


def _train(ctx: Ctx, p: Project, _models: Path) -> run_store.TrainingRun:
    """Start a real run, then stop its worker at once and wait until it is gone (recorded
    cancelled), so no worker outlives the case."""
    from endolite.train import runner

    run = training_service.start(ctx, labels=_TRAIN_LABELS, backbone="resnet18", epochs=1,
                                 batch_size=4, image_size=32, augment=False, device="cpu")
    assert run.status == run_store.RunStatus.RUNNING and run.worker_pid, (run.status, run.error)
    try:
        runner.cancel(p.con, p.settings, run.id, grace=0.5)
        done = training_service.wait(ctx, run.id, timeout=60)
    finally:
        if runner.pid_alive(run.worker_pid):
            os.killpg(run.worker_pid, 9)
            runner.pid_alive(run.worker_pid)           # reap it
    assert done.status == run_store.RunStatus.CANCELLED, (done.status, done.error)
    return done


def _running_run(p: Project, owner: str) -> tuple[int, Path]:
    """A run recorded as running whose worker never started (cancel ends it at once)."""
    run = _run_row(p, owner, run_store.RunStatus.RUNNING)
    return run.id, p.settings.absolute(run.run_dir)


_cache: dict[tuple[int, str], Any] = {}


def _predicting_run(p: Project, owner: str) -> int:
    """A done run over "polyp" with a random-init mobilenet checkpoint (32 px), made once."""
    from tests.test_uncertainty import add_done_run

    key = (id(p), "predict")
    if key not in _cache:
        _cache[key], _ = add_done_run(p.con, p.settings, ["polyp"], label_ids=[_polyp_id(p)],
                                      backbone="mobilenetv3_small_050", image_size=32)
    return _cache[key]


def _predict(ctx: Ctx, p: Project, run_id: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return prediction_service.predict(ctx, run_id, group_id=p.frames[0].group_id,
                                          device="cpu", precision="float32")
    finally:
        torch.set_num_threads(before)


def _suggested(p: Project, owner: str) -> tuple[int, int]:
    """A done run whose prediction set has polyp at 0.9 on grp_1 (a suggestion there)."""
    run = _run_row(p, owner, run_store.RunStatus.DONE)
    frame = p.frames[1]
    pset = prediction_store.create_set(p.con, run_id=run.id, group_id=frame.group_id)
    prediction_store.insert_predictions(p.con, pset, frame_numbers=np.array([frame.frame_number]),
                                        frame_ids=np.array([frame.id]), label_ids=[_polyp_id(p)],
                                        probs=np.array([[0.9]]))
    return frame.id, run.id


def _predicted_segment(p: Project, owner: str) -> int:
    """A proposed polyp segment [20, 24) on the video from a done run's prediction set."""
    run = _run_row(p, owner, run_store.RunStatus.DONE)
    pset = prediction_store.create_set(p.con, run_id=run.id, video_id=p.video_id)
    prediction_store.insert_predicted_segments(p.con, pset, [
        {"label_id": _polyp_id(p), "start_frame": 20, "end_frame": 24, "mean_probability": 0.8}])
    [seg] = prediction_store.predicted_segments(p.con, pset.id)
    return seg.id


def _mislabelled(p: Project, owner: str) -> tuple[int, int]:
    """A done run whose held-out predictions confidently contradict grp_2's polyp (annotated
    absent in its manifest, p = 0.97; the given positives grp_0 / grp_1 sit at 0.9 / 0.85)."""
    from tests.test_uncertainty import add_done_run

    run_id, run_dir = add_done_run(p.con, p.settings, ["polyp"], label_ids=[_polyp_id(p)],
                                   checkpoint=False)
    given = [(p.frames[0], 1, 0.9), (p.frames[1], 1, 0.85), (p.frames[2], 0, 0.97)]
    rows = [{"frame_id": f.id, "path": "x.png", "split": "val", "y": [y], "known": [1]}
            for f, y, _ in given]
    held = [{"frame_id": f.id, "split": "val", "p": [prob]} for f, _, prob in given]
    (run_dir / "manifest.json").write_text(json.dumps({"labels": ["polyp"], "rows": rows}))
    (run_dir / "heldout.json").write_text(json.dumps({"labels": ["polyp"], "rows": held}))
    return run_id, p.frames[2].id


MODEL_DECISIONS = ("model_decisions",)
MASK_TABLES = ("masks", "mask_history")
CASES: dict[Action, Case] = {
    Action.MASK_CREATE: Case(MASK_TABLES, lambda ctx, p, owner: masks.save(
        ctx, NewMask(p.frames[2].id, p.disc(p.n())), label="polyp", annotator=owner)),
    Action.MASK_EDIT: Case(MASK_TABLES, lambda ctx, p, m: masks.edit(
        ctx, m.id, annotate.load_mask(m) & (np.arange(W) < 35)[None, :], version=m.version), _core_mask),
    Action.MASK_DELETE: Case(MASK_TABLES, lambda ctx, p, m: masks.delete(
        ctx, [m.id], versions={m.id: m.version}), _core_mask),
    Action.MASK_UNDO: Case(MASK_TABLES, lambda ctx, p, frame_id: masks.undo(ctx, frame_id), _own_step),
    Action.MASK_PROPAGATE: Case(MASK_TABLES, lambda ctx, p, m: masks.propagate(
        ctx, m.id, direction="forward", to_frame_id=p.video_frames[1].id), _video_mask),
    Action.FRAME_LABEL_SET: Case(("frame_labels",), lambda ctx, p, owner: annotations_service.set_frame_labels(
        ctx, p.frames[0].id, [("polyp", Presence.PRESENT, None)], annotator=owner), changes=False),
    Action.SEGMENT_ADD: Case(("segments",), lambda ctx, p, owner: annotations_service.add_segment(
        ctx, p.video_id, label="polyp", start=10, end=12, annotator=owner)),
    Action.SEGMENT_EXPORT_FLAG: Case(("segments",), lambda ctx, p, seg: annotations_service.set_segment_export(
        ctx, seg.id, False), _core_segment),
    Action.SEGMENT_DELETE: Case(("segments",), lambda ctx, p, seg: annotations_service.delete_segment(
        ctx, seg.id), _core_segment),
    Action.BENCHMARK_TASK: Case(("benchmark_tasks",), lambda ctx, p, s: benchmarks.complete(
        ctx, s[0], annotator=s[1]), _bench_for_tasks),
    # the classical engine (no checkpoint here) has no cache: nothing to compute, but the
    # request is still checked and audited
    Action.EMBED_PRECOMPUTE: Case(("frames",), lambda ctx, p, _: segmentation.precompute(
        ctx, engine_for(p.settings), p.frames[:2]), changes=False),
    Action.MEDIA_UPLOAD: Case(("image_groups", "frames"), lambda ctx, p, path: media.upload(
        ctx, [path], names={str(path): path.name}), _staged),
    Action.PASSWORD_CHANGE: Case(("users",), _change_password),
    Action.FRAME_TAG: Case(("frame_tags",), lambda ctx, p, ft: tags_service.remove_tag(
        ctx, ft[0], ft[1], username=ft[2]), _own_tag),
    Action.EXPORT: Case(("exports",), lambda ctx, p, g: exports.export(ctx, "coco", group_ids=[g[0]]),
                        _validated_group, files=lambda g: sorted(x.name for x in g[1].glob("*"))),
    Action.ANONYMIZE: Case(("anonymizations", "anonymized_frames"), lambda ctx, p, _: anonymization.anonymize(
        ctx, group_id=p.frames[0].group_id), files=lambda _: None),
    Action.ANONYMIZATION_DECIDE: Case(("anonymizations",), lambda ctx, p, gid: anonymization.validate(
        ctx, group_id=gid), _anonymized_group),
    Action.IMPORT_COCO: Case(MASK_TABLES, lambda ctx, p, path: coco_import.import_coco(
        ctx, path, annotator="ann"), _coco_file),
    Action.MASK_IMPORT: Case(MASK_TABLES, lambda ctx, p, path: masks.import_files(
        ctx, [path], label="polyp", annotator=OTHER), _mask_file),
    Action.SEGMENT_MATERIALIZE: Case(("frame_labels",), lambda ctx, p, _: annotations_service.materialize(
        ctx, p.video_id), changes=False),
    Action.LABEL_ADD: Case(("labels",), lambda ctx, p, _: labels.add(ctx, f"new{p.n()}")),
    Action.LABEL_RENAME: Case(("labels",), lambda ctx, p, name: labels.rename(ctx, name, f"{name}_renamed"),
                              _fresh_label),
    Action.LABEL_RECOLOR: Case(("labels",), lambda ctx, p, name: labels.recolor(ctx, name, "#123456"),
                               _fresh_label),
    Action.MEDIA_IMPORT_SERVER: Case(("image_groups", "frames"), lambda ctx, p, folder: media.import_server(
        ctx, [folder]), _in_inbox),
    Action.EXTRACT: Case(("extractions", "frames"), lambda ctx, p, _: media.extract(
        ctx, p.video_id, method="random", count=2, context=0, seed=p.n()), changes=False),
    Action.BENCHMARK_CREATE: Case(("benchmarks", "benchmark_tasks"), lambda ctx, p, _: benchmarks.create(
        ctx, name=f"made {p.n()}", gold="lena", annotators=["ann"], labels=["polyp"],
        frame_ids=[p.frames[1].id])),
    Action.BENCHMARK_ASSIGN: Case(("benchmarks", "benchmark_tasks"), lambda ctx, p, bench_id: benchmarks.assign(
        ctx, bench_id, [OTHER]), _bench_to_assign),
    Action.BENCHMARK_REPORT: Case(("benchmark_runs",), lambda ctx, p, _: benchmarks.save_run(
        ctx, benchmarks.report(ctx, p.bench_id))),
    Action.AUDIT_VIEW: Case(("users",), lambda ctx, p, _: audit_log.entries(ctx), audited=False,
                            changes=False),
    Action.SUGGESTION_DECIDE: Case(("frame_labels", *MODEL_DECISIONS), lambda ctx, p, s:
        prediction_service.decide_suggestion(ctx, s[0], "polyp", s[1], accept=True), _suggested),
    Action.PREDICTED_SEGMENT_DECIDE: Case(("predicted_segments", "segments"), lambda ctx, p, ps_id:
        prediction_service.decide_segment(ctx, ps_id, accept=True), _predicted_segment),
    Action.TRAIN: Case(("training_runs",), _train, _train_data,
                       files=lambda models: sorted(x.name for x in models.glob("*"))),
    Action.TRAIN_CANCEL: Case(("training_runs",), lambda ctx, p, r: training_service.cancel(
        ctx, r[0], grace=0.5), _running_run, files=lambda r: sorted(x.name for x in r[1].glob("*"))),
    Action.PREDICT: Case(("prediction_sets", "predictions", "predicted_segments"), _predict,
                         _predicting_run),
    Action.MISLABEL_REVIEW: Case(MODEL_DECISIONS, lambda ctx, p, m: mislabel_service.review(
        ctx, m[0], m[1], "polyp", "confirmed"), _mislabelled),
    Action.USER_ADD: Case(("users",), lambda ctx, p, _: users_service.add_user(
        ctx, f"new{p.n()}", Role.ANNOTATOR, "new-user-password")),
    Action.USER_ROLE: Case(("users",), lambda ctx, p, name: users_service.set_role(ctx, name, Role.LEAD),
                           _fresh_user),
    Action.USER_ACTIVE: Case(("users",), lambda ctx, p, name: users_service.set_active(ctx, name, False),
                             _fresh_user),
    Action.USER_RESET_PASSWORD: Case(("users",), lambda ctx, p, name: users_service.reset_password(
        ctx, name, "reset-password-1"), _fresh_user),
    Action.SETTINGS: Case(("app_settings",), lambda ctx, p, _: settings_service.set_idle_minutes(
        ctx, 30 + p.n())),
    Action.CHECK: Case(("masks", "jobs"), lambda ctx, p, png: maintenance.check(ctx, repair=True),
                       _png_mirror_lost, files=lambda png: png.exists()),
    Action.BACKUP: Case(("users",), lambda ctx, p, dest: maintenance.backup(ctx, dest), _backup_dest,
                        files=lambda dest: dest.exists()),
}


def _params():
    for action, rule in MATRIX.items():
        if action in PENDING:
            continue
        for role in ACTORS:
            for own in ((True, False) if rule.own else (True,)):
                yield pytest.param(action, role, own,
                                   id=f"{action}-{role}-{'own' if own else 'other'}")


def snapshot(con, case: Case, state) -> dict[str, Any]:
    rows = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in case.tables}
    return {**rows, "files": case.files(state)}


def audit_since(con, last_id: int) -> list[tuple]:
    return con.execute("SELECT action, username, entity, details FROM audit_log WHERE id > ? "
                       "ORDER BY id", [last_id]).fetchall()


@pytest.mark.parametrize("action, role, own", list(_params()))
def test_each_action_is_allowed_or_refused_as_the_matrix_says(project, action, role, own):
    p, case = project, CASES[action]
    actor = ACTORS[role]
    owner = actor if own else OTHER
    state = case.setup(p, owner)
    ctx = p.ctx(actor, role)
    before = snapshot(p.con, case, state)
    last = p.con.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]

    if action == Action.MASK_UNDO and not own:
        # undo names no record: it only ever reaches the actor's own last action, so on a frame
        # where only someone else acted there is nothing to undo, whatever the role
        assert case.call(ctx, p, state) is None
        assert snapshot(p.con, case, state) == before and audit_since(p.con, last) == []
        return

    if allowed(role, action, own=own):
        result = case.call(ctx, p, state)
        entries = audit_since(p.con, last)
        assert not [e for e in entries if e[0] == "denied"]
        if case.audited:
            assert (str(action), actor) in [(e[0], e[1]) for e in entries], entries
        else:
            assert result, "the allowed read returned nothing"
        if case.changes:
            assert snapshot(p.con, case, state) != before, "the allowed action changed nothing"
    else:
        with pytest.raises(PermissionDenied) as refused:
            case.call(ctx, p, state)
        message = str(refused.value)
        assert f"{actor} ({role}) may not {action}" in message
        if allowed(role, action, own=True):
            assert f"on records of {OTHER}" in message and "only their own records" in message
        assert snapshot(p.con, case, state) == before, "a refused action changed something"
        [(what, who, entity, details)] = audit_since(p.con, last)
        assert (what, who, entity) == ("denied", actor, str(action))
        assert json.loads(details)["role"] == str(role)


def test_every_action_of_the_matrix_has_a_case():
    assert set(CASES) | PENDING == set(MATRIX) and not set(CASES) & PENDING
    # a pending action is one no code performs yet; once a service does, it needs a case here
    package = ROOT / "endolite"
    for action in PENDING:
        name = f"Action.{action.name}"
        users_of = [str(path.relative_to(ROOT)) for path in package.rglob("*.py")
                    if path.name != "access.py" and name in path.read_text(encoding="utf-8")]
        assert users_of == [], f"{action} is performed in {users_of}: add it to CASES"


def test_higher_roles_may_do_everything_lower_ones_may():
    order = [Role.ANNOTATOR, Role.LEAD, Role.ADMIN]
    for action, rule in MATRIX.items():
        for own in (True, False):
            grants = [allowed(role, action, own=own) for role in order]
            assert grants == sorted(grants), (action, own)
        for role in order:
            assert allowed(role, action, own=False) <= allowed(role, action, own=True)
        assert allowed(Role.ADMIN, action, own=False), f"admins may do {action} on anyone's"
        assert allowed(Role.LEAD, action, own=False) == allowed(Role.LEAD, action, own=True)


def test_docs_permissions_embeds_the_generated_matrix():
    text = (ROOT / "docs" / "PERMISSIONS.md").read_text(encoding="utf-8")
    assert matrix_markdown() in text
    assert len(matrix_markdown().splitlines()) == len(MATRIX) + 2


# --- the CLI ------------------------------------------------------------------------------------

def _cli(data: Path, *args: str, env_user: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("ENDOLITE_DATA", None)
    env.pop("ENDOLITE_USER", None)
    if env_user:
        env["ENDOLITE_USER"] = env_user
    return subprocess.run([sys.executable, "-m", "endolite.cli", "--data", str(data), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_cli_acts_as_the_named_user_or_as_the_shell_user(tmp_path):
    settings = Settings.resolve(tmp_path / "data")
    con = connect(settings)
    user_store.add(con, "root", Role.ADMIN, cheap_hash("root-password"))
    user_store.add(con, "anna", Role.ANNOTATOR, cheap_hash("anna-password"))
    con.close()

    def state() -> tuple[list, list]:
        c = connect(settings)
        try:
            return (c.execute("SELECT name FROM labels").fetchall(),
                    c.execute("SELECT username, action, entity, details FROM audit_log ORDER BY id").fetchall())
        finally:
            c.close()

    for refused in (_cli(settings.data_dir, "--user", "anna", "label", "add", "x"),
                    _cli(settings.data_dir, "label", "add", "x", env_user="anna")):
        assert refused.returncode == 2 and refused.stdout == ""
        assert refused.stderr.startswith("error: anna (annotator) may not label.add: needs lead")
    names, entries = state()
    assert names == []
    assert [(u, a, e) for u, a, e, _ in entries] == [("anna", "denied", "label.add")] * 2

    done = _cli(settings.data_dir, "label", "add", "x")
    assert done.returncode == 0, done.stderr
    names, entries = state()
    assert names == [("x",)]
    who, action, entity, details = entries[-1]
    assert (who, action, entity) == (f"shell:{getpass.getuser()}", "label.add", "label")
    assert json.loads(details)["via"] == "server shell"

    # maintenance commands check the role too (admin only)
    dest = tmp_path / "copy"
    for argv, action in ((["backup", str(dest)], "maintenance.backup"), (["check"], "maintenance.check")):
        refused = _cli(settings.data_dir, "--user", "anna", *argv)
        assert refused.returncode == 2
        assert refused.stderr.startswith(f"error: anna (annotator) may not {action}: needs admin")
    assert not dest.exists()

    gone = _cli(settings.data_dir, "--user", "nobody", "label", "add", "y")
    assert gone.returncode == 2 and "--user nobody: no active user" in gone.stderr
    assert state()[0] == [("x",)]
