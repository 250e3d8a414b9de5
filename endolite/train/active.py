"""Active learning glue: score a video range with a trained run's model for the ``uncertain``
extraction method (``endolite.extract.extract_frames(..., method="uncertain", model=RUN_ID)``).

``score_range`` takes an evenly spaced grid of candidate frames of ``[lo, hi)`` (at most
``max(UNCERTAIN_MAX_CANDIDATES, CANDIDATES_PER_PICK x count)`` of them, every frame of a short
range), decodes them sparsely (``media.decode_frames``: the decoder scales each to the model's
S x S, so only small RGB arrays are held), runs the run's ``best.pt`` (``predict.Predictor``)
in batches of ``BATCH`` and returns the candidates with their uncertainty scores
(``uncertainty.uncertainty_scores``: entropy, margin and flicker between neighbouring
candidates) and the model's image features, for ``sampling.select_uncertain``.

The run must be ``done`` with a ``best.pt`` in its run directory; anything else is refused with
a message naming the run.  Memory: ``BATCH`` small images plus ``(N, L)`` probabilities and
``(N, D)`` float32 features (N candidates).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from endolite import media, sampling
from endolite.config import Settings
from endolite.errors import InvalidInput, NotFound
from endolite.train import uncertainty

UNCERTAIN_MAX_CANDIDATES = 600   # candidate frames the model scores: at least this many ...
CANDIDATES_PER_PICK = 10         # ... or this many per frame to pick
BATCH = 32

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class ScoredRange:
    """Candidates of one range with scores: ``candidates.scores`` ``(N,) float64`` (higher =
    more uncertain), ``features`` ``(N, D) float32``, ``probs`` ``(N, L) float32`` (labels in
    ``labels`` order), ``run_id`` the model's run, ``precision`` the inference form used."""

    candidates: sampling.Candidates
    features: np.ndarray
    probs: np.ndarray
    labels: tuple[str, ...]
    run_id: int
    precision: str

    def params(self, picks: np.ndarray) -> dict[str, Any]:
        """What the extraction row records: the run, the score weights, the number of scored
        candidates and each pick's score and probabilities (frame number -> values)."""
        row = {int(n): i for i, n in enumerate(self.candidates.frame_numbers)}
        scores = self.candidates.scores
        return {"model": self.run_id, "labels": list(self.labels), "precision": self.precision,
                "score_weights": dict(uncertainty.WEIGHTS), "scored": len(row),
                "pick_scores": {str(int(n)): round(float(scores[row[int(n)]]), 6)
                                for n in picks if int(n) in row},
                "pick_probs": {str(int(n)): [round(float(v), 4) for v in self.probs[row[int(n)]]]
                               for n in picks if int(n) in row}}


def done_run_checkpoint(con, settings: Settings, run_id: int) -> tuple[Any, Path]:
    """``(TrainingRun, path of its best.pt)`` of a finished run; NotFound for an unknown run or
    a missing checkpoint, InvalidInput for a run that is not done."""
    from endolite.storage.training import RunStatus, get_run

    if isinstance(run_id, bool) or not isinstance(run_id, (int, np.integer)):
        raise InvalidInput(f"model: {run_id!r} is not a training run id")
    run = get_run(con, int(run_id))
    if run.status != RunStatus.DONE:
        raise InvalidInput(f"model: training run {run.id} is {run.status}, not done; "
                           "only a finished run's model can score frames")
    path = settings.absolute(run.run_dir) / "best.pt"
    if not path.is_file():
        raise NotFound(f"model: training run {run.id} has no checkpoint ({run.run_dir}/best.pt)")
    return run, path


def candidate_grid(lo: int, hi: int, count: int) -> np.ndarray:
    """``(M,) int64`` frame numbers evenly spread over ``[lo, hi)``, M = min(hi - lo, cap)."""
    cap = max(UNCERTAIN_MAX_CANDIDATES, CANDIDATES_PER_PICK * int(count))
    return lo + sampling.spread_indices(hi - lo, cap)


def score_range(con, settings: Settings, path: Path, index: media.StreamIndex, lo: int, hi: int,
                *, run_id: int, count: int, counter: media.DecodeCounter | None = None,
                progress: ProgressFn | None = None, device: str = "auto",
                precision: str = "float32") -> ScoredRange:
    """Score the candidate frames of ``[lo, hi)`` of the video at ``path`` with run ``run_id``.

    ``progress(fraction, message)`` goes from 0 to 1 over the decoding and inference.  Frames
    the stream does not produce are left out of the candidates.  ``precision`` defaults to
    float32, not "auto": auto chooses by timing, and scores that change with the machine's load
    would change the picks of a seed.
    """
    from endolite.train.predict import Predictor

    report = progress or (lambda fraction, message: None)
    _, checkpoint = done_run_checkpoint(con, settings, run_id)
    predictor = Predictor.load(checkpoint, device=device, precision=precision)
    size = predictor.image_size
    grid = candidate_grid(lo, hi, count)
    numbers: list[int] = []
    probs: list[np.ndarray] = []
    features: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    message = f"scoring frames with the model of run {int(run_id)}"

    def flush() -> None:
        if batch:
            out = predictor.predict(np.stack(batch))
            probs.append(out.probs)
            features.append(out.features)
            batch.clear()

    for n, frame in media.decode_frames(path, index, grid, counter=counter,
                                        progress=lambda f: report(0.95 * f, message)):
        batch.append(frame.to_ndarray(format="rgb24", width=size, height=size))
        numbers.append(int(n))
        if len(batch) >= BATCH:
            flush()
    flush()
    labels = tuple(predictor.labels)
    p = np.concatenate(probs) if probs else np.zeros((0, len(labels)), np.float32)
    feats = np.concatenate(features) if features else np.zeros((0, 0), np.float32)
    scores = uncertainty.uncertainty_scores(p)
    report(1.0, message)
    candidates = sampling.Candidates(frame_numbers=np.asarray(numbers, dtype=np.int64),
                                     scores=scores, fps=index.fps or None)
    return ScoredRange(candidates=candidates, features=feats, probs=p, labels=labels,
                       run_id=int(run_id), precision=str(predictor.precision))


__all__ = ["ScoredRange", "score_range", "done_run_checkpoint", "candidate_grid",
           "UNCERTAIN_MAX_CANDIDATES", "CANDIDATES_PER_PICK"]
