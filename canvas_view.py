"""Streamlit glue for the Annotate canvas: mouse-wheel zoom over the drawing canvas, and a probe
of the browser window's geometry so the canvas can be fitted to it (``window_fit``).

A tiny ``st.components.v2`` component (no iframe: its script runs in the app page) listens for
wheel events over the page's Fabric.js canvas (``canvas.upper-canvas``) and sends one trigger
per gesture (throttled to 4 a second): ``{"fx", "fy", "dir"}`` — the pointer as fractions of
the canvas's width and height (x right, y down, 0..1) and +1 to zoom in / -1 to zoom out.
The page turns it into a new viewport (``endolite.zoom.Viewport.zoomed(at=...)``).
Kept outside the core package: endolite/ never imports streamlit."""

from __future__ import annotations

import streamlit as st

from endolite.services import preferences
from endolite.zoom import window_box

# canvas box (width x height, CSS px): "Auto" fits the frame to the browser window (the main
# column's width beside the side column, the height below the canvas's top; measured by
# ``window_fit``) so the whole frame shows without scrolling; the presets override it (kept per
# user).  The frame's full resolution is reached by zooming.
AUTO = "Auto (fit the window)"
CANVAS_BOXES: dict[str, tuple[int, int] | None] = {
    AUTO: None, "560 × 420": (560, 420), "640 × 480": (640, 480), "800 × 600": (800, 600),
    "960 × 720": (960, 720), "1200 × 900": (1200, 900)}
DEFAULT_BOX = AUTO
FALLBACK_BOX = (640, 480)          # Auto before the browser has measured (or if it never does)

_JS = """
export default function(component) {
    window.__endoliteWheelSend = component.setTriggerValue;
    if (window.__endoliteWheel) { return; }
    window.__endoliteWheel = true;
    let last = 0;
    document.addEventListener("wheel", (e) => {
        // the canvas may sit in a component's shadow root: look along the event's path
        const target = e.composedPath().find((el) => el instanceof HTMLCanvasElement
            && el.classList.contains("upper-canvas"));
        if (!target) { return; }
        e.preventDefault();
        const now = Date.now();
        if (now - last < 250 || e.deltaY === 0) { return; }
        last = now;
        const r = target.getBoundingClientRect();
        window.__endoliteWheelSend("wheel", {
            fx: (e.clientX - r.left) / r.width, fy: (e.clientY - r.top) / r.height,
            dir: e.deltaY < 0 ? 1 : -1, t: now});
    }, {passive: false, capture: true});
}
"""

_wheel = st.components.v2.component("endolite_canvas_wheel", js=_JS)


def wheel_zoom(*, key: str) -> dict | None:
    """Mount the wheel listener; returns this rerun's wheel gesture ``{"fx", "fy", "dir"}``
    (fractions of the canvas, x right / y down; dir +1 in, -1 out) or None."""
    result = _wheel(key=key, on_wheel_change=lambda: None)
    gesture = getattr(result, "wheel", None)
    return gesture if isinstance(gesture, dict) else None


# --- the canvas fitted to the window ----------------------------------------------------------
# Streamlit does not tell the server the browser's size: this component (its script runs in the
# app page) measures the main column's content width, the window's inner height and the top of
# the canvas's container (the element with class ``st-key-<anchor>``, in page coordinates), and
# sends them as state ``size`` whenever they differ by >= 8 px from what the server has;
# measured once the anchor of the current run is drawn (not a stale one: what is above it is laid
# out), within 40 ms of a change of the page's elements, on window resize and every second
# (cheap: a few reads; a send only on a change), so the first run's measurement reaches the
# server while that run still goes on (the rerun follows it at once, no idle page in between).
_FIT_JS = """
export default function(component) {
    const data = component.data || {};
    window.__endoliteFit = {send: component.setStateValue, anchor: data.anchor,
                            known: data.known || null};
    const close = (a, b) => a && ["w", "h", "top"].every((k) => Math.abs((a[k] || 0) - b[k]) < 8);
    const measure = () => {
        const state = window.__endoliteFit;
        const app = document.querySelector('[data-testid="stApp"]');
        const main = document.querySelector('[data-testid="stMainBlockContainer"]');
        const anchor = state.anchor && document.querySelector(".st-key-" + state.anchor);
        // the anchor drawn by the current run: everything above it is laid out already
        if (!app || !main || !anchor || anchor.closest('[data-stale="true"]')) { return; }
        const style = getComputedStyle(main);
        const width = main.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        // the top at no scroll: the page scrolls in Streamlit's main section, not the window
        let top = anchor.getBoundingClientRect().top + window.scrollY;
        for (let el = anchor.parentElement; el; el = el.parentElement) { top += el.scrollTop; }
        const now = {w: Math.round(width), h: Math.round(window.innerHeight), top: Math.round(top)};
        // what the server has: the last value sent from this page, else what it laid out with
        if (close(window.__endoliteFitSent || state.known, now)) {
            document.documentElement.dataset.endoliteFit = "fitted";
            return;
        }
        document.documentElement.dataset.endoliteFit = "pending";
        window.__endoliteFitSent = now;
        (window.__endoliteFitLog = window.__endoliteFitLog || []).push([Date.now(), now]);
        state.send("size", now);
    };
    window.__endoliteFitMeasure = measure;
    if (!window.__endoliteFitOn) {
        window.__endoliteFitOn = true;
        let timer = null, soon = null;
        window.addEventListener("resize", () => {
            clearTimeout(timer); timer = setTimeout(() => window.__endoliteFitMeasure(), 200); });
        // the page's elements change (a run draws them): measure within 40 ms (throttled, not
        // debounced: a run keeps drawing for a while, and the measurement should reach the
        // server while the first run still goes on)
        new MutationObserver(() => {
            if (soon === null) { soon = setTimeout(() => { soon = null; window.__endoliteFitMeasure(); }, 40); }
        }).observe(document.body, {childList: true, subtree: true});
        setInterval(() => window.__endoliteFitMeasure(), 1000);
    }
    setTimeout(measure, 50);
}
"""

_fit = st.components.v2.component("endolite_canvas_fit", js=_FIT_JS)


def window_fit(*, key: str, anchor: str, known: dict | None) -> dict | None:
    """Mount the size probe; returns the latest measurement ``{"w", "h", "top"}`` (CSS px: the
    main column's content width, the window's inner height, the top of the element with class
    ``st-key-<anchor>`` in page coordinates) or None before the browser has sent one.  ``known``
    is the measurement the page laid out with (kept by the page between visits): a freshly
    loaded page sends only when its geometry differs from it by 8 px or more.  Once the probe
    has sent a value, ``<html data-endolite-fit>`` reads "fitted" (the server has the current
    geometry) or "pending" (a new one is on its way)."""
    result = _fit(key=key, data={"anchor": anchor, "known": known}, on_size_change=lambda: None)
    size = getattr(result, "size", None)
    if not isinstance(size, dict) or not all(isinstance(size.get(k), (int, float)) for k in ("w", "h", "top")):
        return None
    return {k: int(size[k]) for k in ("w", "h", "top")}


def _save_box() -> None:
    import ui                               # the page's glue (the signed-in user's ctx)

    here = ui.callback_ctx()
    if here is not None and "ann_canvas_box" in st.session_state:     # not after a logout
        preferences.put(here, "annotate.canvas", st.session_state["ann_canvas_box"])


def view_settings(ctx) -> tuple[tuple[int, int] | None, float, bool, bool]:
    """The sidebar's "View" expander: canvas size (Auto or a preset, kept for the account), mask
    opacity, outlines only, mask ids.  Returns ``(preset box or None for Auto, opacity,
    outline_only, show_ids)``."""
    with st.expander("View", expanded=False):
        if "ann_canvas_box" not in st.session_state:
            saved = preferences.get(ctx, "annotate.canvas", DEFAULT_BOX)
            st.session_state["ann_canvas_box"] = saved if saved in CANVAS_BOXES else DEFAULT_BOX
        st.selectbox("Canvas size", list(CANVAS_BOXES), key="ann_canvas_box", on_change=_save_box,
                     help="The largest canvas the frame is fitted into (kept for your account). "
                          "Auto fits it to the window, the whole frame visible without scrolling; "
                          "zoom in (I, or the mouse wheel) for the frame's full resolution.")
        opacity = st.slider("Mask opacity", 0.0, 1.0, 0.45, 0.05, key="ann_opacity")
        outline_only = st.toggle("Outlines only", key="ann_outline")
        show_ids = st.toggle("Mask ids on the frame", value=True, key="ann_show_ids")
    return CANVAS_BOXES[st.session_state["ann_canvas_box"]], opacity, outline_only, show_ids


def canvas_box(preset: tuple[int, int] | None, *, key: str, anchor: str, side_width: int,
               fallback: tuple[int, int] = FALLBACK_BOX) -> tuple[tuple[int, int], bool]:
    """The canvas box ``(width, height)`` (CSS px) and whether the canvas should wait for the
    window's measurement.  ``preset``: a fixed box (the user's override); None: fitted to the
    window (``endolite.zoom.window_box`` beside a side column of ``side_width`` px) from the
    probe's measurement (mounted here, in the sidebar; the last one kept in
    ``st.session_state[key]`` for the next visit).  Before any measurement: ``fallback``, and
    ``True`` for the first such run only (if the browser never measures, the next run draws at
    ``fallback``).  The page draws its canvas inside ``st.container(key=anchor)``."""
    with st.sidebar:                            # an empty element
        measured = window_fit(key=f"{key}_probe", anchor=anchor, known=st.session_state.get(key))
    if measured is not None:
        st.session_state[key] = measured
    if preset is not None:
        return preset, False
    fitted = st.session_state.get(key)
    if fitted is None:
        first = not st.session_state.get(f"{key}_waited")
        st.session_state[f"{key}_waited"] = True
        return fallback, first
    return window_box(column_width=fitted["w"], window_height=fitted["h"], top=fitted["top"],
                      side_width=side_width), False
