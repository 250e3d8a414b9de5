"""Streamlit glue for the Annotate canvas: mouse-wheel zoom over the drawing canvas.

A tiny ``st.components.v2`` component (no iframe: its script runs in the app page) listens for
wheel events over the page's Fabric.js canvas (``canvas.upper-canvas``) and sends one trigger
per gesture (throttled to 4 a second): ``{"fx", "fy", "dir"}`` — the pointer as fractions of
the canvas's width and height (x right, y down, 0..1) and +1 to zoom in / -1 to zoom out.
The page turns it into a new viewport (``endolite.zoom.Viewport.zoomed(at=...)``).
Kept outside the core package: endolite/ never imports streamlit."""

from __future__ import annotations

import streamlit as st

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
