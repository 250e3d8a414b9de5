"""Training (leads and admins): train a multilabel frame classifier on the team's annotations,
watch it learn, run it over videos, review what it suggests.

New run -> ``services.training.preview`` / ``start`` (``endolite/train/``: dataset, runner,
worker); runs and their metrics are read from ``storage.training`` (the runner's watcher thread
records what the worker writes); charts in ``training_charts.py``; predictions ->
``services.predictions`` and ``timeline_predictions.py``; likely mislabels ->
``services.mislabels``.  The `uncertain` frame picker is on the Extract page.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import training_charts as charts
import ui
from endolite.records import Role
from endolite.services import Action
from endolite.services import training as service
from endolite.storage import labels as label_store
from endolite.storage import training as runs_store
from endolite.train.model import BACKBONES

user = ui.require_user(Role.ADMIN, Role.LEAD)
st.title("Training")
ctx = ui.ctx()
con = ctx.con
service.watch(con, ctx.settings)          # records running workers' progress (one thread)
if flash := st.session_state.pop("train_flash", None):
    st.success(flash)
if failed := st.session_state.pop("train_flash_error", None):
    st.error(ui.md(failed))

# --- new run ----------------------------------------------------------------------------------
st.subheader("New run")
names = [lab.name for lab in label_store.list_all(con)]
if not names:
    st.info("No labels yet: create labels and annotate frames first.")
    ui.link_to("views/labels.py", "Go to Labels", ":material/label:")
with st.form("train_form"):
    chosen = st.multiselect("Labels", names, default=st.session_state.get("train_labels", []),
                            help="the classifier's outputs, one per label")
    c1, c2, c3, c4 = st.columns(4)
    backbone = c1.selectbox("Backbone", list(BACKBONES), help="timm model; random init unless a "
                            "pretrained checkpoint is named (gastro_rn50: ResNet50 for a GastroNet "
                            "checkpoint)")
    epochs = c2.number_input("Epochs", min_value=1, max_value=500, value=10)
    batch_size = c3.number_input("Batch size", min_value=1, max_value=1024, value=16)
    image_size = c4.number_input("Image size", min_value=16, max_value=1024, value=224, step=16)
    c1, c2, c3, c4 = st.columns(4)
    loss = c1.selectbox("Loss", ["bce", "focal"], help="masked BCE, or masked focal loss "
                        "(alpha 0.25, gamma 2); both with per-label class weights")
    sampler = c2.selectbox("Sampling", ["plain", "balanced"],
                           help="balanced: frames with rare labels are drawn more often")
    freeze = c3.checkbox("Freeze backbone", help="train only the classifier head")
    negative = c4.checkbox("Treat unlabeled as negative",
                           help="a label not set on a frame counts as absent (else: unknown, "
                                "ignored by the loss)")
    with st.expander("More options"):
        d1, d2, d3, d4 = st.columns(4)
        lr_head = d1.number_input("Head learning rate", value=1e-3, format="%.0e", min_value=1e-7)
        lr_backbone = d2.number_input("Backbone learning rate", value=1e-4, format="%.0e",
                                      min_value=1e-8)
        val_fraction = d3.number_input("Validation fraction", 0.0, 0.8, 0.2, step=0.05)
        test_fraction = d4.number_input("Test fraction", 0.0, 0.8, 0.1, step=0.05)
        e1, e2, e3, e4 = st.columns([1, 1, 1, 2])
        seed = e1.number_input("Seed", value=42, step=1)
        nproc = e2.number_input("Processes", min_value=1, max_value=64, value=1,
                                help="> 1: torchrun with DistributedDataParallel (one process per "
                                     "GPU; gloo on CPU)")
        precision = e3.selectbox("Precision", ["auto", "fp32", "bf16", "fp16"],
                                 help="auto: bfloat16 where a measured step is clearly faster "
                                      "(CPU) or the GPU supports it; fp16 needs a GPU; weights "
                                      "and checkpoint stay float32")
        checkpoint = e4.text_input("Pretrained checkpoint (server path)",
                                   help="a local .pt / .pth file; nothing is downloaded")
    b1, b2 = st.columns(2)
    check = b1.form_submit_button("Check dataset")
    go = b2.form_submit_button("Start training", type="primary")

split_options = {"labels": chosen, "treat_unlabeled_as_negative": negative,
                 "val_fraction": float(val_fraction), "test_fraction": float(test_fraction),
                 "seed": int(seed)}
if check or go:
    st.session_state["train_labels"] = chosen
if check and chosen:
    with ui.reported_errors():
        st.session_state["train_preview"] = service.preview(ctx, **split_options)
elif check:
    st.warning("Choose at least one label.")
if go:
    if not chosen:
        st.warning("Choose at least one label.")
    else:
        with ui.reported_errors():
            run = service.start(ctx, **split_options, backbone=backbone, epochs=int(epochs),
                                batch_size=int(batch_size), image_size=int(image_size),
                                loss=loss, sampler=sampler, freeze_backbone=freeze,
                                lr_head=float(lr_head), lr_backbone=float(lr_backbone),
                                pretrained_checkpoint=checkpoint.strip() or None,
                                nproc=int(nproc), precision=precision)
            st.session_state["train_run"] = run.id
            st.session_state["train_flash"] = f"Run {run.id} started."
            st.rerun()

summary = st.session_state.get("train_preview")
if summary is not None:
    st.caption(f"{summary.frames} frames from {summary.media} videos / image groups")
    st.dataframe(pd.DataFrame(summary.table()), hide_index=True)
    for warning in summary.warnings:
        st.warning(warning)

# --- runs -------------------------------------------------------------------------------------
st.subheader("Runs")
runs = runs_store.list_runs(con)
if not runs:
    st.info("No training runs yet.")
    st.stop()
by_id = {r.id: r for r in runs}
if st.session_state.get("train_run") not in by_id:
    st.session_state["train_run"] = runs[0].id
run_id = st.selectbox("Run", list(by_id), key="train_run",
                      format_func=lambda i: f"run {i} · {by_id[i].backbone} · "
                                            f"{', '.join(by_id[i].labels)} · {by_id[i].status}")


@st.fragment(run_every=2.0)
def run_view(run_id: int) -> None:
    run = runs_store.get_run(ui.cursor(), run_id)
    live = run.status in ("queued", "running")
    line = f"Run {run.id}: **{run.status}**"
    if run.message:
        line += f" — {ui.md(run.message)}"
    if run.best_epoch is not None and run.best_val_macro_f1 is not None:
        line += f" · best epoch {run.best_epoch} (validation macro F1 {run.best_val_macro_f1:.3f})"
    elif run.best_epoch is not None:
        line += f" · best epoch {run.best_epoch}"
    st.markdown(line)
    if live:
        st.progress(min(max(run.progress, 0.0), 1.0))
        if ctx.may(Action.TRAIN_CANCEL) and st.button("Cancel run", key=f"cancel_{run.id}"):
            with ui.reported_errors():
                service.cancel(ctx, run.id)
                st.rerun()
    elif st.session_state.get("train_was_live") == run.id:
        st.session_state.pop("train_was_live", None)
        st.rerun(scope="app")      # the finished run's sections below appear
    if live:
        st.session_state["train_was_live"] = run.id
    if run.error:
        st.error(f"Failed: {ui.md(run.error)}")
    df = charts.frame(runs_store.metrics(ui.cursor(), run.id))
    if len(df):
        left, right = st.columns(2)
        left.plotly_chart(charts.loss_figure(df), key=f"loss_{run.id}")
        metric = right.selectbox("Per-label metric", charts.PER_LABEL, key=f"metric_{run.id}")
        right.plotly_chart(charts.label_figure(df, metric), key=f"label_{run.id}")
        st.caption("Validation metrics of the last epoch")
        st.dataframe(charts.epoch_table(df), key=f"epoch_{run.id}")
    test = charts.confusion_table(run.result)
    if len(test):
        st.caption("Test split, best epoch: confusion and metrics per label")
        st.dataframe(test, key=f"test_{run.id}")
    with st.expander("Log"):
        st.code(service.log_tail(ctx.settings, run) or "(empty)", language=None)


run_view(run_id)
run = by_id[run_id]
if run.status != "done":
    st.stop()

# --- predict ----------------------------------------------------------------------------------
import prediction_panels  # noqa: E402  (only when a finished run is chosen)

st.subheader("Predict")
prediction_panels.predict_section(ctx, run)

st.subheader("Likely mislabels")
prediction_panels.mislabel_section(ctx, run)
