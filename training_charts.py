"""Charts and tables of a training run for the Training page (plotly glue; not core).

Input: metric rows ``{"epoch", "split", "label", "metric", "value"}`` as
``endolite.storage.training`` returns them (label '' = over all labels), and a run's result
dict (docs/TRAINING.md ``result.json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go

PER_LABEL = ("f1", "precision", "recall", "auroc", "ap")


def frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Metric rows as a DataFrame (columns epoch, split, label, metric, value)."""
    df = pd.DataFrame(list(rows), columns=["epoch", "split", "label", "metric", "value"])
    return df.sort_values(["epoch", "split", "label", "metric"]) if len(df) else df


def loss_figure(df: pd.DataFrame) -> go.Figure:
    """Train and validation loss per epoch, and validation macro F1 (right axis)."""
    fig = go.Figure()
    for split, dash in (("train", "solid"), ("val", "dot")):
        part = df[(df.split == split) & (df.label == "") & (df.metric == "loss")]
        if len(part):
            fig.add_trace(go.Scatter(x=part.epoch, y=part.value, mode="lines+markers",
                                     name=f"{split} loss", line={"dash": dash}))
    f1 = df[(df.split == "val") & (df.label == "") & (df.metric == "macro_f1")]
    if len(f1):
        fig.add_trace(go.Scatter(x=f1.epoch, y=f1.value, mode="lines+markers", name="val macro F1",
                                 yaxis="y2"))
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title="Loss and validation macro F1", xaxis_title="epoch",
                      yaxis={"title": "loss"},
                      yaxis2={"title": "macro F1", "overlaying": "y", "side": "right",
                              "range": [0, 1]},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def label_figure(df: pd.DataFrame, metric: str, *, split: str = "val") -> go.Figure:
    """One line per label: ``metric`` on ``split`` per epoch."""
    fig = go.Figure()
    part = df[(df.split == split) & (df.label != "") & (df.metric == metric)]
    for label, rows in part.groupby("label"):
        fig.add_trace(go.Scatter(x=rows.epoch, y=rows.value, mode="lines+markers", name=label))
    fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title=f"{split} {metric} per label", xaxis_title="epoch",
                      yaxis={"range": [0, 1.02]}, legend={"orientation": "h", "y": -0.3})
    return fig


def epoch_table(df: pd.DataFrame, *, split: str = "val") -> pd.DataFrame:
    """Per label, the last epoch's metrics on ``split`` (rows: labels; columns: metrics)."""
    part = df[(df.split == split) & (df.label != "")]
    if not len(part):
        return pd.DataFrame()
    last = part[part.epoch == part.epoch.max()]
    table = last.pivot_table(index="label", columns="metric", values="value", aggfunc="first")
    return table[[c for c in (*PER_LABEL, "support") if c in table.columns]]


def confusion_table(result: Mapping[str, Any], *, split: str = "test") -> pd.DataFrame:
    """Per label on ``split`` of the finished run: tp, fp, fn, tn and the metrics."""
    per_label = ((result or {}).get(split) or {}).get("per_label") or {}
    rows = []
    for label, m in per_label.items():
        rows.append({"label": label, **{k: m.get(k) for k in
                                        ("tp", "fp", "fn", "tn", "precision", "recall", "f1",
                                         "auroc", "ap")}})
    return pd.DataFrame(rows).set_index("label") if rows else pd.DataFrame()
