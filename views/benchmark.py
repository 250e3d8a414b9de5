"""Benchmark annotators against a gold standard (leads and admins).

Create a benchmark (frames, labels in scope, gold annotator, annotators), follow the task
status, read the report (leaderboard, IoU box plots, annotator x label heatmap, confusion
matrix, worst frames side by side, downloads) and compare saved runs over time.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

import ui
from endolite.benchmark import service
from endolite.records import Role
from endolite.services import benchmarks as bench_service
from endolite.storage import benchmarks, labels, media, users

user = ui.require_user(Role.ADMIN, Role.LEAD)
st.title("Benchmark")
ctx = ui.ctx()
con = ctx.con

if "bm_new" in st.session_state:                       # select a just-created benchmark
    st.session_state["bm_pick"] = st.session_state.pop("bm_new")
if flash := st.session_state.pop("bm_flash", None):
    st.success(flash)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# readable leaderboard headers (the table's columns stay the CSV's snake_case names)
LEADERBOARD_CONFIG = {
    "annotator": st.column_config.TextColumn("Annotator", width="medium"),
    "tasks_done": st.column_config.NumberColumn("Done", width="small",
                                                help="Frames this annotator marked complete"),
    "tasks_total": st.column_config.NumberColumn("Tasks", width="small"),
    "evaluated": st.column_config.NumberColumn(
        "Evaluated", width="medium", help="Frames complete for both the gold annotator and this one"),
    "mean_iou": st.column_config.NumberColumn(
        "Mean IoU", format="%.3f", width="medium",
        help="Best IoU of each annotator object against any gold object (Encord), averaged"),
    "class_score": st.column_config.NumberColumn(
        "Class score", format="%.3f", width="medium",
        help="Share of objects whose best gold object has the same label"),
    "f1": st.column_config.NumberColumn("F1", format="%.3f", width="small"),
    "precision": st.column_config.NumberColumn("Precision", format="%.3f", width="medium"),
    "recall": st.column_config.NumberColumn("Recall", format="%.3f", width="small"),
    "matched": st.column_config.NumberColumn("Matched", width="small",
                                             help="Same label, IoU at or above the threshold"),
    "mismatched": st.column_config.NumberColumn("Wrong label", width="medium",
                                                help="Overlap above the threshold, other label"),
    "missing": st.column_config.NumberColumn("Missing", width="small",
                                             help="Gold objects nobody matched"),
    "extra": st.column_config.NumberColumn("Extra", width="small",
                                           help="Annotator objects matching no gold object"),
    "mean_dice": st.column_config.NumberColumn("Mean Dice", format="%.3f", width="medium"),
}


def frame_caption(row, report) -> str:
    """The worst-frames line: the frame score and, beside it, the annotator's best overlap with
    any gold object, so a frame whose masks overlap below the match threshold (score 0,
    "missing 1, extra 1") says so instead of looking like no overlap at all."""
    ious = [r.iou_score for r in report.iou_rows
            if r.annotator == row.annotator and r.frame_id == row.frame_id]
    best = max(ious) if ious else None
    parts = [f"**{ui.md(row.data_unit_name)}** (frame {row.frame_id})",
             f"score {row.score:.2f}"]
    if best is not None:
        parts.append(f"best IoU {best:.3f}")
    parts.append(f"matched {row.matched}, mismatched {row.mismatched}, missing {row.missing}, "
                 f"extra {row.extra}")
    line = " · ".join(parts)
    if best is not None and best > 0 and row.matched + row.mismatched == 0:
        line += f" (best overlap below the {report.iou_threshold:.2f} IoU match threshold)"
    return line


@st.cache_data(show_spinner="Evaluating…", max_entries=32)
def _result(data_dir: str, benchmark_id: int, threshold: float, fingerprint: str):
    """Recomputed whenever a task status, mask, frame label or segment changes (fingerprint)."""
    return service.build_benchmark_report(ui.cursor(), benchmark_id, iou_threshold=threshold)


def create_section() -> None:
    people = [u.name for u in users.list_all(con)]
    all_labels = [lb.name for lb in labels.list_all(con)]
    if not people or not all_labels:
        st.info("Add users and labels first.")
        return
    source = st.radio("Frames from", ["Sequence", "Extraction", "Frame ids"], horizontal=True,
                      key="bm_source")
    with st.form("bm_create"):
        name = st.text_input("Name", key="bm_name")
        c1, c2 = st.columns(2)
        gold = c1.selectbox("Gold annotator (trusted expert)", people, key="bm_gold")
        chosen = c2.multiselect("Annotators to evaluate", people, key="bm_annotators")
        scope = st.multiselect("Labels in scope", all_labels, key="bm_labels")
        picks: dict = {}
        if source == "Sequence":
            options = ([("video", v.id, f"video {v.id}: {v.title}") for v in media.list_videos(con)]
                       + [("group", g.id, f"images {g.id}: {g.title}") for g in media.list_groups(con)])
            seq = st.selectbox("Sequence", options, format_func=lambda o: o[2], key="bm_seq")
            s1, s2, s3 = st.columns(3)
            sample = s1.number_input("Sample size (0 = all frames)", 0, 100_000, 0, key="bm_sample")
            method = s2.radio("Sample", service.SAMPLE_METHODS, horizontal=True, key="bm_method")
            seed = s3.number_input("Seed", 0, 2**31 - 1, 0, key="bm_seed")
            if seq is not None:
                picks = {"video_id" if seq[0] == "video" else "group_id": seq[1],
                         "sample": int(sample) or None, "seed": int(seed), "method": method}
        elif source == "Extraction":
            runs = service.list_extractions(con)
            ext = st.selectbox("Extraction", runs, key="bm_extraction",
                               format_func=lambda r: f"extraction {r['id']}: {r['video_title']} "
                                                     f"({r['method']}, {r['frames']} frames)")
            if ext is not None:
                picks = {"extraction_id": ext["id"]}
        else:
            picks = {"frame_ids": st.text_input("Frame ids (comma-separated)", key="bm_frames")}
        threshold = st.number_input("IoU threshold for a match", 0.05, 1.0, 0.5, 0.05, key="bm_threshold")
        if st.form_submit_button("Create benchmark", type="primary"):
            with ui.reported_errors():
                if "frame_ids" in picks:
                    picks["frame_ids"] = service.parse_ids(picks["frame_ids"])
                frame_ids = service.select_frames(con, **picks)
                bench = bench_service.create(ctx, name=name, gold=gold, annotators=chosen,
                                             labels=scope, frame_ids=frame_ids,
                                             iou_threshold=float(threshold))
                st.session_state["bm_new"] = bench.id
                st.session_state["bm_flash"] = (f"Benchmark {bench.id} created: {len(bench.frame_ids)} "
                                                f"frames for {ui.md(bench.gold)} and "
                                                f"{plural(len(bench.annotators), 'annotator')}.")
                st.rerun()


def _heatmap(z, x, y, *, title: str, text: bool = False, zmax: float | None = None):
    fig = go.Figure(go.Heatmap(z=z, x=x, y=y, colorscale="Viridis", zmin=0, zmax=zmax,
                               text=z if text else None, texttemplate="%{text}" if text else None,
                               hoverongaps=False))
    fig.update_layout(title=title, height=160 + 40 * len(y), margin=dict(t=40, b=10),
                      yaxis=dict(autorange="reversed"))
    return fig


def report_section() -> None:
    items = benchmarks.list_all(con)
    if not items:
        st.info("No benchmark yet: create one in the next tab.")
        return
    by_id = {b.id: b for b in items}
    bench_id = st.selectbox("Benchmark", list(by_id), key="bm_pick",
                            format_func=lambda i: f"{i}: {by_id[i].name} (gold {by_id[i].gold})")
    bench = by_id[bench_id]
    threshold = st.number_input("IoU threshold", 0.05, 1.0, float(bench.iou_threshold), 0.05,
                                key=f"bm_iou_{bench.id}")

    st.subheader("Tasks")
    st.dataframe(pd.DataFrame(service.status_rows(con, bench.id)), hide_index=True, key="bm_status")
    with st.expander("Add frames / annotators"):
        with st.form(f"bm_more_{bench.id}"):
            more_frames = st.text_input("Frame ids to add", key=f"bm_more_frames_{bench.id}")
            more_people = st.multiselect("Annotators to add", [u.name for u in users.list_all(con)
                                                               if u.name != bench.gold
                                                               and u.name not in bench.annotators],
                                         key=f"bm_more_people_{bench.id}")
            if st.form_submit_button("Add"):
                with ui.reported_errors():
                    n = 0
                    if more_frames.strip():
                        n += bench_service.add_frames(ctx, bench.id, service.parse_ids(more_frames))
                    if more_people:
                        n += bench_service.assign(ctx, bench.id, more_people)
                    st.session_state["bm_flash"] = f"{plural(n, 'new task')}."
                    st.rerun()

    with ui.reported_errors():
        result = _result(str(ui.settings().data_dir), bench.id, float(threshold),
                         service.fingerprint(con, bench.id))
        report = result.report
        st.subheader("Leaderboard")
        st.caption("Only frames that both the gold annotator and the annotator marked complete count.")
        st.dataframe(pd.DataFrame(result.leaderboard, columns=service.LEADERBOARD_COLUMNS),
                     hide_index=True, key="bm_leaderboard", column_config=LEADERBOARD_CONFIG)
        files = result.files()
        d1, d2, d3 = st.columns(3)
        d1.download_button(service.IOU_RESULTS_CSV, files[service.IOU_RESULTS_CSV],
                           file_name=service.IOU_RESULTS_CSV, mime="text/csv", key="bm_dl_iou",
                           icon=":material/download:")
        d2.download_button(service.SUMMARY_CSV, files[service.SUMMARY_CSV], file_name=service.SUMMARY_CSV,
                           mime="text/csv", key="bm_dl_summary", icon=":material/download:")
        d3.download_button(service.REPORT_JSON, files[service.REPORT_JSON], file_name=service.REPORT_JSON,
                           mime="application/json", key="bm_dl_json", icon=":material/download:")
        if not report.frames:
            st.info("Nothing to evaluate yet: no frame is complete for both the gold annotator and "
                    "an annotator.")
        else:
            plots(result)
        runs_section(result)


def plots(result) -> None:
    report = result.report
    rows = pd.DataFrame(service.iou_rows(report))
    c1, c2 = st.columns(2)
    if not rows.empty:
        fig = px.box(rows, x="annotator", y="iou_score", points="all", color="annotator",
                     hover_data=["data_unit_name", "label_name"], title="IoU per annotator object")
        fig.update_layout(showlegend=False, yaxis_range=[0, 1.02])
        c1.plotly_chart(fig, key="bm_box")
    metrics = {"mean_matched_iou": "IoU of same-label matches", "f1": "F1",
               "mean_iou": "best IoU per object (Encord)", "class_score": "class score"}
    metric = c2.selectbox("Heatmap", list(metrics), format_func=metrics.get, key="bm_heat_metric")
    names, label_names, z = service.heatmap(report, metric=metric)
    if names:
        c2.plotly_chart(_heatmap(z, label_names, names, title=f"{metrics[metric]}: annotator x label",
                                 zmax=1.0), key="bm_heat")

    st.subheader("Confusion matrix")
    who = st.selectbox("Annotator", ["(all)", *report.confusion], key="bm_cm_who")
    cm = report.confusion_total if who == "(all)" else report.confusion[who]
    st.plotly_chart(_heatmap([list(r) for r in cm.counts], list(cm.labels), list(cm.labels),
                             title="rows: gold label · columns: annotator label", text=True),
                    key="bm_cm")
    if report.agreement:
        st.subheader("Frame labels and time segments")
        st.dataframe(pd.DataFrame([service.row_dict(r) for r in report.agreement]), hide_index=True,
                     key="bm_agreement")

    st.subheader("Worst frames")
    st.caption("Gold on the left, the annotator on the right: what to fix. Score: IoU of the "
               "same-label matches summed over every object (matched, wrong label, missing, "
               f"extra); a pair counts as matched from IoU {report.iou_threshold:.2f}. Best IoU: "
               "the annotator's best overlap with any gold object.")
    g1, g2 = st.columns([2, 1])
    annotator = g1.selectbox("Annotator", [s.annotator for s in report.annotators], key="bm_gallery_who")
    count = g2.number_input("Frames", 1, 20, 3, key="bm_gallery_n")
    worst = service.worst_frames(report, annotator, count=int(count))
    if not worst:
        st.success(f"{ui.md(annotator)} agrees with the gold annotator on every evaluated frame.")
    for row in worst:
        gold_img, ann_img = service.frame_overlays(con, ui.settings(), result.benchmark, row.frame_id, annotator)
        st.markdown(frame_caption(row, report))
        left, right = st.columns(2)
        left.image(gold_img, caption=f"gold: {result.benchmark.gold}", width="stretch")
        right.image(ann_img, caption=f"annotator: {annotator}", width="stretch")


def runs_section(result) -> None:
    st.subheader("Runs over time")
    if st.button("Save this run", key="bm_save_run"):
        run_id = bench_service.save_run(ctx, result)
        st.success(f"Saved run {run_id}.")
    runs = pd.DataFrame(service.runs_table(con, result.benchmark.id))
    if runs.empty:
        st.caption("No saved runs yet: save one to compare annotators over time.")
        return
    runs["run"] = runs["run"].astype(str)
    metric = st.radio("Metric", ["mean_iou", "f1", "class_score"], horizontal=True, key="bm_run_metric")
    st.plotly_chart(px.bar(runs, x="annotator", y=metric, color="run", barmode="group",
                           hover_data=["saved_at", "saved_by", "iou_threshold"]), key="bm_runs_chart")
    st.dataframe(runs.pivot_table(index="annotator", columns="run", values=metric), key="bm_runs_table")


tab_report, tab_create = st.tabs(["Report", "New benchmark"])
with tab_report:
    report_section()
with tab_create:
    create_section()
