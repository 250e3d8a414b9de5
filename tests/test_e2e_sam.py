"""In Chromium, with a SAM checkpoint dropped into ``data/models/sam/``: the annotation page says
SAM vit_b is active, precomputes the frames' embeddings in the background (float16 files in
``data/cache/sam/``), and a + click makes a SAM mask that is accepted and stored with source
``sam``.  The checkpoint is a real vit_b with random weights made here (nothing is downloaded),
so the mask's shape is arbitrary: it is checked against SAM's own answer for the stored click,
decoded here from the embedding the dashboard cached, not against the disc."""

from __future__ import annotations

import numpy as np
import pytest

from endolite import annotate
from endolite.media import write_image_atomic
from endolite.segment import ENV_CHECKPOINT, ENV_MODEL
from endolite.storage import annotations, connect, media
from endolite.synthetic import disc_mask
from tests.e2e_support import (annotation_project, browser_page, canvas_point, log_in,
                                running_dashboard, wait_idle)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
H, W = 240, 320          # H != W: a transposed click would land elsewhere
CLICK = (200, 90)        # (x, y): inside the first frame's disc
SEED = 0                 # torch seed of the random vit_b weights: SAM's best mask for CLICK
                         # is not empty (the page refuses empty masks); it covers most of the frame


def _checkpoint(folder):
    """A real SAM vit_b checkpoint (state dict) with random weights, named like the released one."""
    import torch
    from segment_anything import sam_model_registry

    torch.manual_seed(SEED)
    model = sam_model_registry["vit_b"]()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sam_vit_b_random.pth"
    torch.save(model.state_dict(), path)
    return path


def _frames(tmp_path):
    """Two different 320x240 frames (different sha256, so two embeddings) with a disc each."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, (cx, cy) in enumerate([(200, 90), (130, 140)], start=1):
        rng = np.random.default_rng(i)
        image = np.full((H, W, 3), 40, dtype=np.uint8) + rng.integers(0, 20, (H, W, 3), dtype=np.uint8)
        image[disc_mask(H, W, cx, cy, 45)] = (210, 120, 110)
        write_image_atomic(folder / f"polyp0{i}.png", image, fmt="png")
    return folder


def test_sam_checkpoint_precompute_click_and_accept(tmp_path, monkeypatch):
    from playwright.sync_api import expect

    monkeypatch.delenv(ENV_CHECKPOINT, raising=False)   # the data folder is how it is found
    monkeypatch.delenv(ENV_MODEL, raising=False)
    data_dir, settings, group = annotation_project(tmp_path, _frames(tmp_path))
    con = connect(settings)
    frames = media.frames_of(con, group_id=group.id)
    con.close()
    assert [f.original_name for f in frames] == ["polyp01.png", "polyp02.png"]
    assert frames[0].sha256 != frames[1].sha256
    checkpoint = _checkpoint(settings.models_dir / "sam")
    cache = settings.cache_dir / "sam" / "vit_b"
    npy = [cache / f"{f.sha256}.npy" for f in frames]

    with running_dashboard(data_dir, tmp_path / "server.log") as url, browser_page(tmp_path) as page:
        log_in(page, url, "ann", "annotator-pw")
        page.get_by_role("link", name="Annotate").click()
        page.get_by_role("heading", name="Annotate").wait_for()
        page.get_by_text(f"Segmentation engine: SAM vit_b from {checkpoint.name} "
                         f"(found via {settings.models_dir / 'sam'})").wait_for()
        expect(page.get_by_text("Classical engine")).to_have_count(0)
        page.get_by_text("Embeddings ready for 0 of 2 frames").wait_for()
        wait_idle(page)
        assert not any(p.exists() for p in npy), "nothing is embedded before it is asked for"

        page.get_by_role("button", name="Precompute embeddings").click()
        page.get_by_text("Embedding frames (").wait_for()       # a progress bar while it runs
        expect(page.get_by_role("button", name="Precompute embeddings")).to_have_count(0)
        # the page updates itself (no clicks in between) until both frames are ready; ~20-60 s
        # per frame on a busy 2-core CPU; the first one loads the model and measures the
        # precision ("auto": float32 and bfloat16, twice each)
        page.get_by_text("Embeddings ready for 2 of 2 frames").wait_for(timeout=420_000)
        wait_idle(page)
        expect(page.get_by_text("Embedding frames (")).to_have_count(0)
        expect(page.get_by_role("button", name="Precompute embeddings")).to_have_count(0)
        assert all(p.is_file() for p in npy)
        for path in npy:
            features = np.load(path, allow_pickle=False)
            assert features.dtype == np.float16 and features.shape == (256, 64, 64)
            assert path.with_suffix(".json").is_file()
        stamps = [p.stat().st_mtime_ns for p in npy]
        [measured] = (settings.cache_dir / "sam" / "precision").glob("*.json")
        assert '"model": "vit_b (sam_vit_b_random.pth)"' in measured.read_text(), \
            "auto precision measured once, kept for this machine and checkpoint"

        page.locator("canvas.upper-canvas").first.wait_for()
        page.mouse.click(*canvas_point(page, *CLICK, W, H))   # tool "+ point" is the default
        page.get_by_text("1 positive, 0 negative clicks").wait_for(timeout=60_000)
        page.get_by_role("button", name="Accept mask").click()
        page.get_by_text("Masks on this frame (1)").wait_for(timeout=60_000)
        page.get_by_text("· mask · sam · ann ·").wait_for()
        wait_idle(page)
        page.screenshot(path=str(tmp_path / "annotate_sam.png"), full_page=True)
    assert [p.stat().st_mtime_ns for p in npy] == stamps, "the click reused the cached embedding"

    con = connect(settings)
    [mask] = annotations.masks_of(con, frame_ids=[frames[0].id])
    con.close()
    assert (mask.source, mask.kind, mask.label, mask.annotator) == ("sam", "mask", "polyp", "ann")
    assert mask.prompt["engine"] == "sam:vit_b"
    [(x, y, sign)] = mask.prompt["points"]
    assert sign == 1 and abs(x - CLICK[0]) < 3 and abs(y - CLICK[1]) < 3, "the click in image (x, y)"
    got = annotate.load_mask(mask)
    assert got.shape == (H, W) and got.dtype == bool and mask.area == int(got.sum()) > 0

    # SAM's own answer for the stored click, decoded here from the dashboard's cached embedding
    from endolite.segment.sam import SamSegmenter

    engine = SamSegmenter("vit_b", checkpoint, cache_dir=settings.cache_dir)
    embedding = engine.cached(frames[0].sha256)
    assert embedding is not None and embedding.image_size == (H, W)
    candidates, scores = engine.predict(embedding, np.array([[x, y]]), np.array([sign]))
    expected = candidates[int(np.argmax(scores))]
    iou = (got & expected).sum() / (got | expected).sum()
    assert iou > 0.99, f"the stored mask is SAM's best mask for the click (IoU {iou:.3f})"
