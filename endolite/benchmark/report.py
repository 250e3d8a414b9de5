"""Per-frame evaluation and its aggregation into a benchmark report.

Input: one ``FrameInput`` per frame (the gold objects and, per annotator, that annotator's
objects) and optionally ``SequenceInput`` frame-label / time-segment sequences.  Output: a
frozen ``BenchmarkReport`` with per-annotator, per-annotator x label, per-label and per-frame
rows, the Encord-style IoU rows (``iou_results.csv``), every match decision, confusion matrices
and frame-label agreement.  The records, and the report's CSV / JSON forms, live in
``records.py`` (built on the generic helpers of ``render.py``).

Policies:

- Scope: ``labels`` (names, or a mapping name -> label id) is the benchmark's scope.  Objects
  and sequences with any other label are dropped before matching (from gold and annotators
  alike) and their label names are listed in ``ignored_labels``.  ``labels=None``: every label
  seen is in scope.
- An annotator is evaluated on a frame only when the frame's ``annotations`` has a key for them;
  an empty sequence there means "saw the frame, drew nothing" (all gold objects missing).
- Both empty (no in-scope gold object and none drawn): the frame counts as evaluated and as
  agreement (frame score 1, P = R = F1 = 1), and contributes no IoU rows and no match rows.
- Gold empty, annotator drew: all annotator objects are extra (IoU score 0, class score 0).
- Annotator empty, gold present: all gold objects are missing.
- Masks of different frame sizes on one frame raise ``InvalidInput`` naming the frame.
- Frame score (for "worst frames"): the summed IoU of same-label matched pairs divided by
  (matched + mismatched + missing + extra); 1.0 when both are empty.
- Per-label counts: ``mismatched`` is counted on the gold object's label; a mismatched pair is a
  false negative for the gold label and a false positive for the annotator's label.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from endolite.benchmark.matching import (
    BenchObject,
    best_gold_lists,
    check_frame_size,
    iou_matrix,
    match_objects,
    validate_threshold,
)
from endolite.benchmark.metrics import (
    add_confusion,
    agreement_from_counts,
    binary_agreement,
    confusion_matrix,
    prf,
)
from endolite.benchmark.records import (
    ALL,
    AgreementRow,
    BenchmarkReport,
    FrameEvaluation,
    FrameInput,
    FrameResult,
    FrameRow,
    IouRow,
    MatchRow,
    SequenceInput,
    Summary,
)
from endolite.errors import InvalidInput


def normalize_labels(labels: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any] | None:
    """Scope as ``{name: label_id}`` (a plain sequence of names uses the name as id)."""
    if labels is None:
        return None
    if isinstance(labels, str):
        raise InvalidInput("labels must be a sequence of label names or a mapping name -> id, not a string")
    if isinstance(labels, Mapping):
        return {str(k): v for k, v in labels.items()}
    return {str(name): str(name) for name in labels}


def evaluate_frame(frame: FrameInput, *, labels: Mapping[str, Any] | Sequence[str] | None = None,
                   iou_threshold: float = 0.5) -> FrameResult:
    """Evaluate every annotator present on ``frame`` against its gold objects.

    One ``pycocotools.mask.iou`` call covers all annotators' objects x all gold objects (plus one
    on bbox arrays when boxes are involved).  See the module docstring for the policies.
    """
    threshold = validate_threshold(iou_threshold)
    scope = normalize_labels(labels)
    where = f"frame {frame.frame_id} ({frame.data_unit_name!r})"
    ignored: set[str] = set()

    def keep(objs: Iterable[BenchObject]) -> list[BenchObject]:
        if scope is None:
            return list(objs)
        out = []
        for o in objs:
            if o.label in scope:
                out.append(o)
            else:
                ignored.add(o.label)
        return out

    gold = keep(frame.gold)
    per_annotator = [(name, keep(objs)) for name, objs in frame.annotations.items()]
    all_objects = [o for _, objs in per_annotator for o in objs]
    check_frame_size([*gold, *all_objects], where=where)
    iou = iou_matrix(all_objects, gold, where=where, check=False)
    gold_labels = [o.label for o in gold]
    ids = scope or {}
    task_id = frame.data_unit_name if frame.task_id is None else frame.task_id
    evaluations = []
    offset = 0
    for name, objs in per_annotator:
        sub = iou[offset:offset + len(objs)]
        offset += len(objs)
        evaluations.append(_evaluate_one(name, frame, task_id, objs, gold, gold_labels, sub,
                                         threshold, ids))
    return FrameResult(tuple(evaluations), tuple(sorted(ignored)))


def _evaluate_one(annotator: str, frame: FrameInput, task_id: Any, objs: list[BenchObject],
                  gold: list[BenchObject], gold_labels: list[str], iou, threshold: float,
                  ids: Mapping[str, Any]) -> FrameEvaluation:
    labels = [o.label for o in objs]
    matching = match_objects(iou, labels, gold_labels, iou_threshold=threshold)
    grid = iou.tolist()
    scores = best_gold_lists(grid, labels, gold_labels)
    matched_to: dict[int, int] = dict((*matching.pairs, *matching.mismatches))
    fid, unit = frame.frame_id, frame.data_unit_name
    objects = []
    for i, (obj, (s, c, b)) in enumerate(zip(objs, scores)):
        j = matched_to.get(i)
        objects.append(IouRow(
            annotator, unit, ids.get(obj.label, obj.label), s, c, fid, obj.label, obj.id,
            obj.kind.value, gold[b].id if b >= 0 else None, gold[j].id if j is not None else None,
            grid[i][j] if j is not None else None, 2.0 * s / (1.0 + s), task_id))
    matches = []
    pair_iou_sum = 0.0
    for i, j in matching.pairs:
        v = grid[i][j]
        pair_iou_sum += v
        matches.append(MatchRow(annotator, fid, unit, "match", objs[i].id, objs[i].label,
                                gold[j].id, gold[j].label, v, 2.0 * v / (1.0 + v)))
    for i, j in matching.mismatches:
        v = grid[i][j]
        matches.append(MatchRow(annotator, fid, unit, "mismatch", objs[i].id, objs[i].label,
                                gold[j].id, gold[j].label, v, 2.0 * v / (1.0 + v)))
    for j in matching.missing:
        matches.append(MatchRow(annotator, fid, unit, "missing", None, None, gold[j].id,
                                gold[j].label, None, None))
    for i in matching.extra:
        matches.append(MatchRow(annotator, fid, unit, "extra", objs[i].id, objs[i].label, None,
                                None, None, None))
    n_pairs = len(matching.pairs)
    total = len(matches)
    p, r, f1 = prf(n_pairs, len(objs), len(gold))
    row = FrameRow(
        annotator, fid, unit, task_id, len(gold), len(objs), n_pairs, len(matching.mismatches),
        len(matching.missing), len(matching.extra), p, r, f1,
        pair_iou_sum / n_pairs if n_pairs else None,
        pair_iou_sum / total if total else 1.0, total == 0)
    return FrameEvaluation(row, tuple(objects), tuple(matches))


class _Acc:
    """Running sums for one summary group."""

    __slots__ = ("n_gold", "n_ann", "matched", "mismatched", "missing", "extra", "iou_sum",
                 "cls_sum", "m_iou_sum", "m_dice_sum")

    def __init__(self) -> None:
        self.n_gold = self.n_ann = self.matched = self.mismatched = self.missing = self.extra = 0
        self.iou_sum = self.cls_sum = self.m_iou_sum = self.m_dice_sum = 0.0

    def add(self, other: _Acc) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self, annotator: str, label: str | None, label_id: Any, *, tasks: int | None = None,
                frames: int | None = None, empty_frames: int | None = None,
                frame_score_sum: float = 0.0) -> Summary:
        p, r, f1 = prf(self.matched, self.n_ann, self.n_gold)
        n_ann, m = self.n_ann, self.matched
        return Summary(
            annotator, label, label_id, tasks, frames, empty_frames, self.n_gold, n_ann, m,
            self.mismatched, self.missing, self.extra, p, r, f1,
            self.iou_sum / n_ann if n_ann else None, self.cls_sum / n_ann if n_ann else None,
            self.m_iou_sum / m if m else None, self.m_dice_sum / m if m else None,
            frame_score_sum / frames if frames else None)


def build_report(frames: Iterable[FrameInput], *, labels: Mapping[str, Any] | Sequence[str] | None = None,
                 iou_threshold: float = 0.5, sequences: Iterable[SequenceInput] = (),
                 progress: Callable[[int, int], None] | None = None) -> BenchmarkReport:
    """Evaluate all ``frames`` (and frame-label ``sequences``) and aggregate the report.

    ``labels``: the scope (names or mapping name -> id; order kept; ``None``: every label seen,
    sorted).  ``progress(done, total)`` is called after each frame.
    """
    threshold = validate_threshold(iou_threshold)
    frames = list(frames)
    sequences = list(sequences)
    scope = normalize_labels(labels)
    if scope is None:
        seen = {o.label for f in frames for o in f.gold}
        seen |= {o.label for f in frames for objs in f.annotations.values() for o in objs}
        seen |= {s.label for s in sequences}
        scope = {name: name for name in sorted(seen)}
    ignored: set[str] = set()
    frame_rows: list[FrameRow] = []
    iou_rows: list[IouRow] = []
    match_rows: list[MatchRow] = []
    for k, frame in enumerate(frames):
        result = evaluate_frame(frame, labels=scope, iou_threshold=threshold)
        ignored.update(result.ignored_labels)
        for ev in result.evaluations:
            frame_rows.append(ev.frame)
            iou_rows.extend(ev.objects)
            match_rows.extend(ev.matches)
        if progress is not None:
            progress(k + 1, len(frames))

    label_names = tuple(scope)
    accs: dict[tuple[str, str], _Acc] = defaultdict(_Acc)
    confusion_entries: dict[str, list[tuple[str | None, str | None]]] = defaultdict(list)
    for row in match_rows:
        a, gl, al = row.annotator, row.gold_label, row.annotator_label
        confusion_entries[a].append((gl, al))
        if gl is not None:
            acc = accs[a, gl]
            acc.n_gold += 1
            if row.status == "match":
                acc.matched += 1
                acc.m_iou_sum += row.iou
                acc.m_dice_sum += row.dice
            elif row.status == "mismatch":
                acc.mismatched += 1
            else:
                acc.missing += 1
        if al is not None:
            acc = accs[a, al]
            acc.n_ann += 1
            if row.status == "extra":
                acc.extra += 1
    for row in iou_rows:
        acc = accs[row.annotator, row.label_name]
        acc.iou_sum += row.iou_score
        acc.cls_sum += row.class_score

    per_annotator: dict[str, dict[str, Any]] = {}
    for row in frame_rows:
        info = per_annotator.setdefault(row.annotator, {"tasks": set(), "frames": 0, "empty": 0,
                                                        "score": 0.0})
        info["tasks"].add(row.task_id)
        info["frames"] += 1
        info["empty"] += row.both_empty
        info["score"] += row.score
    annotator_names = sorted(per_annotator)

    annotator_labels, annotators = [], []
    label_totals = {name: _Acc() for name in label_names}
    overall = _Acc()
    for a in annotator_names:
        total = _Acc()
        for name in label_names:
            acc = accs.get((a, name))
            if acc is None:
                continue
            total.add(acc)
            label_totals[name].add(acc)
            annotator_labels.append(acc.summary(a, name, scope[name]))
        overall.add(total)
        info = per_annotator[a]
        annotators.append(total.summary(a, None, None, tasks=len(info["tasks"]), frames=info["frames"],
                                        empty_frames=info["empty"], frame_score_sum=info["score"]))
    label_summaries = [label_totals[name].summary(ALL, name, scope[name]) for name in label_names]
    overall_summary = overall.summary(
        ALL, None, None, tasks=len({(r.annotator, r.task_id) for r in frame_rows}), frames=len(frame_rows),
        empty_frames=sum(r.both_empty for r in frame_rows),
        frame_score_sum=sum(r.score for r in frame_rows))

    confusion = {a: confusion_matrix(confusion_entries.get(a, ()), labels=label_names)
                 for a in annotator_names}
    confusion_total = confusion_matrix((), labels=label_names)
    for cm in confusion.values():
        confusion_total = add_confusion(confusion_total, cm)

    agreement, seq_ignored = _agreement(sequences, scope)
    ignored |= seq_ignored
    frame_rows.sort(key=lambda r: (r.score, r.annotator, r.frame_id, r.data_unit_name))
    return BenchmarkReport(
        iou_threshold=threshold, labels=label_names, label_ids=dict(scope),
        ignored_labels=tuple(sorted(ignored)), overall=overall_summary, annotators=tuple(annotators),
        annotator_labels=tuple(annotator_labels), label_summaries=tuple(label_summaries),
        frames=tuple(frame_rows), iou_rows=tuple(iou_rows), matches=tuple(match_rows),
        confusion=confusion, confusion_total=confusion_total, agreement=agreement)


def _agreement(sequences: list[SequenceInput], scope: Mapping[str, Any]
               ) -> tuple[tuple[AgreementRow, ...], set[str]]:
    """Pool the 2x2 counts per (annotator, label, kind) over all sequences (videos)."""
    ignored: set[str] = set()
    pooled: dict[tuple[str, str, str], Counter] = {}
    for seq in sequences:
        if seq.kind not in ("frame_label", "segment"):
            raise InvalidInput(f"sequence kind must be frame_label or segment, got {seq.kind!r}")
        if seq.label not in scope:
            ignored.add(seq.label)
            continue
        try:
            ag = binary_agreement(seq.gold, seq.annotated)
        except InvalidInput as exc:
            raise InvalidInput(f"{seq.kind} {seq.label!r} of {seq.annotator!r}"
                               f"{' in ' + repr(seq.data_unit_name) if seq.data_unit_name else ''}: {exc}") from None
        c = pooled.setdefault((seq.annotator, seq.label, seq.kind), Counter())
        c.update(tp=ag.tp, fp=ag.fp, fn=ag.fn, tn=ag.tn, excluded=ag.n_excluded, sequences=1)
    rows = []
    order = {name: i for i, name in enumerate(scope)}
    for (annotator, label, kind), c in sorted(pooled.items(), key=lambda kv: (kv[0][0], order[kv[0][1]], kv[0][2])):
        ag = agreement_from_counts(tp=c["tp"], fp=c["fp"], fn=c["fn"], tn=c["tn"], n_excluded=c["excluded"])
        rows.append(AgreementRow(annotator, label, scope[label], kind, c["sequences"], ag.n, ag.n_excluded,
                                 ag.tp, ag.fp, ag.fn, ag.tn, ag.accuracy, ag.f1, ag.kappa))
    return tuple(rows), ignored
