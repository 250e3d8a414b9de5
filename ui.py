"""Streamlit glue shared by app.py and the pages: the one connection, the signed-in user.

Kept outside the core package: endolite/ never imports streamlit.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from endolite.config import Settings
from endolite.errors import EndoliteError
from endolite.records import Role, User

_lock = threading.Lock()


@st.cache_resource(show_spinner=False)
def _connection_for(data_dir: str):
    """The process's one read-write DuckDB connection for ``data_dir`` (reruns use cursors)."""
    from endolite.services import training
    from endolite.storage import connect

    settings = Settings(Path(data_dir))
    con = connect(settings)
    # training runs a stopped dashboard left going: record their true state, watch live ones
    training.watch(con, settings)
    return con


@st.cache_resource(show_spinner=False)
def _ensure_setup_code(data_dir: str) -> str:
    """The setup code exists (``endolite serve`` made and printed it at start; a dashboard
    started some other way makes it here and prints it once)."""
    from endolite import auth

    settings_ = Settings(Path(data_dir))
    existed = settings_.setup_code_path.exists()
    code = auth.ensure_setup_code(settings_)
    if not existed:
        print(f"\n  endolite: fresh data directory {data_dir}\n"
              f"  one-time setup code for the first admin account: {code}\n"
              f"  (also in {settings_.setup_code_path})\n", flush=True)
    return code


def settings() -> Settings:
    return Settings.resolve()


def cursor():
    """A cursor on the shared connection (a connection object is not thread-safe)."""
    return _connection_for(str(settings().data_dir)).cursor()


def announce_setup_code() -> None:
    _ensure_setup_code(str(settings().data_dir))


def client_address() -> str:
    """The browser's address: the reverse proxy's X-Real-IP / X-Forwarded-For when it sets them
    (deploy/nginx.conf does), else the peer address the server sees ("unknown" for localhost)."""
    try:
        headers = st.context.headers
        forwarded = headers.get("X-Real-Ip") or (headers.get("X-Forwarded-For") or "").split(",")[0]
        address = forwarded.strip() or st.context.ip_address
    except Exception:  # noqa: BLE001 - AppTest and bare mode have no request context
        return "unknown"
    return address if isinstance(address, str) and address else "unknown"


def sign_in(user: User) -> None:
    """Start a fresh session for ``user`` (just logged in): nothing of a previous user's session
    survives.  A browser session (``services.users.start_session``) begins too; the next run
    renders the script that trades a one-time code for its HttpOnly cookie
    (``endolite.session_cookie``), so a reload keeps the user signed in."""
    from endolite import session_cookie
    from endolite.services import users as user_service

    st.session_state.clear()
    session_id, token = user_service.start_session(cursor(), user, client=client_address())
    st.session_state["user_id"] = user.id
    st.session_state["user_seen"] = None
    st.session_state["session_id"] = session_id
    st.session_state["cookie_tried"] = True
    st.session_state["cookie_script"] = session_cookie.start_script(session_cookie.issue_code(token))


def sign_out(*, reason: str = "logout") -> None:
    """End the session: it is revoked in the database (its cookie no longer signs in), every key
    goes (undo, selections, previews), the audit log says why, and the next run asks the browser
    to drop the cookie."""
    from endolite import session_cookie
    from endolite.services import users as user_service

    user_id = st.session_state.get("user_id")
    if user_id is not None:
        try:
            from endolite.storage import users as store

            user_service.logout(cursor(), store.get(cursor(), user_id), reason=reason,
                                session_id=st.session_state.get("session_id"))
        except Exception:  # noqa: BLE001 - a deleted account still ends its session
            pass
    st.session_state.clear()
    st.session_state["cookie_tried"] = True      # this tab's (revoked) cookie is not tried again
    st.session_state["cookie_script"] = session_cookie.end_script()


def session_id() -> int | None:
    """The browser session (``sessions`` row) of this tab; None in AppTest page tests."""
    return st.session_state.get("session_id")


def session_cookie_script() -> None:
    """Render (once) the pending script that sets or clears the session cookie."""
    script = st.session_state.pop("cookie_script", None)
    if script:
        st.html(script, unsafe_allow_javascript=True)


def _cookie_token() -> str | None:
    from endolite import auth

    try:
        return st.context.cookies.get(auth.SESSION_COOKIE)
    except Exception:  # noqa: BLE001 - AppTest and bare mode have no request context
        return None


def _resume_from_cookie() -> User | None:
    """A fresh Streamlit session (a reload, a new tab): sign in from the session cookie the
    browser sent with its first request, when it names a live session (tried once per tab)."""
    from endolite import session_cookie
    from endolite.services import users as user_service

    if st.session_state.get("cookie_tried"):
        return None
    st.session_state["cookie_tried"] = True
    token = _cookie_token()
    if not token:
        return None
    con = cursor()
    resumed = user_service.resume_session(con, token, client=client_address())
    if resumed is None:
        st.session_state["cookie_script"] = session_cookie.end_script()
        st.session_state["session_notice"] = ("Your previous session has ended (logged out, idle "
                                              "too long, or the account changed). Please log in "
                                              "again.")
        return None
    user, session = resumed
    st.session_state["user_id"] = user.id
    st.session_state["user_seen"] = user_service.now(con)
    st.session_state["session_id"] = session
    return user


def current_user() -> User | None:
    """The signed-in user as the database has them now (re-read on every rerun: a deactivated
    or demoted user loses access at the next click); None after the idle timeout, or when the
    browser session was revoked (logout elsewhere, deactivation, password change).  A fresh
    Streamlit session signs in from the session cookie (``_resume_from_cookie``)."""
    from endolite.services import users as user_service

    user_id = st.session_state.get("user_id")
    if user_id is None:
        return _resume_from_cookie()
    con = cursor()
    user = user_service.session_user(con, user_id, last_seen=st.session_state.get("user_seen"),
                                     session_id=st.session_state.get("session_id"))
    if user is None:
        sign_out(reason="session_ended")
        st.session_state["session_notice"] = ("Your session ended (idle too long, logged out "
                                              "elsewhere, or the account was deactivated). "
                                              "Please log in again.")
        return None
    st.session_state["user_seen"] = user_service.now(con)
    return user


def ctx():
    """The service context of this rerun: cursor, settings and the signed-in user as actor."""
    from endolite.services import Actor, Ctx

    user = require_user()
    return Ctx(con=cursor(), settings=settings(), actor=Actor.of(user), client=client_address())


def callback_ctx():
    """``ctx()`` for widget callbacks, or None when nobody is signed in.  After a logout the
    browser still sends the old page's widgets, whose cleared state Streamlit reports as
    changes: their callbacks run before ``app.py``, and ``require_user``'s stop there would
    stop the run that should show the login form."""
    from endolite.services import Actor, Ctx

    user = current_user()
    if user is None:
        return None
    return Ctx(con=cursor(), settings=settings(), actor=Actor.of(user), client=client_address())


def md(text: object) -> str:
    """``text`` escaped for Streamlit markdown: HTML, markdown and :directives: display as typed."""
    out = []
    for ch in str(text):
        if ch in "\\`*_{}[]()#+-.!|<>~$:&\"'=":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("  \n")
        else:
            out.append(ch)
    return "".join(out)


def require_user(*roles: Role) -> User:
    """The signed-in user; stops the page when nobody is signed in or the role does not fit."""
    user = current_user()
    if user is None:
        st.warning("Please log in.")
        st.stop()
    if roles and user.role not in roles:
        st.error(f"This page is for {' / '.join(roles)}; you are signed in as {user.role}.")
        st.stop()
    return user


@contextmanager
def reported_errors():
    """Show an EndoliteError as st.error and keep the page running."""
    from endolite.errors import describe_os_error

    try:
        yield
    except EndoliteError as exc:
        st.error(md(exc))
    except OSError as exc:          # disk full, read-only data directory: say so, keep running
        st.error(md(describe_os_error(exc)))


GRID_PAGE = 48          # thumbnails per page of a frame grid


def frame_grid(frames, *, columns: int = 6, key: str = "grid", page_size: int = GRID_PAGE) -> None:
    """Thumbnails of ``frames`` (a list of records.Frame, or a ``media.FramePages`` that reads
    only the page shown), ``page_size`` at a time with a page selector, captioned with
    number / file name."""
    total = len(frames)
    if not total:
        st.info("No frames yet.")
        return
    pages = -(-total // page_size)
    page_key = f"{key}_page"
    if st.session_state.get(page_key, 1) > pages:          # the sequence shrank, or another one
        st.session_state[page_key] = pages
    page = 1
    if pages > 1:
        left, right = st.columns([1, 3])
        page = int(left.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1,
                                     key=page_key))
        right.caption(f"Frames {(page - 1) * page_size + 1}–{min(page * page_size, total)} "
                      f"of {total}")
    base = settings()
    cols = st.columns(columns)
    for i, frame in enumerate(frames[(page - 1) * page_size:page * page_size]):
        label = frame.original_name or f"#{frame.frame_number}"
        if frame.timestamp is not None:
            label += f" · {frame.timestamp:.2f}s"
        if frame.is_context:
            label += " · context"
        with cols[i % columns]:
            st.image(str(base.absolute(frame.path)), caption=f"{frame.id}: {label}",
                     width="stretch")


def sequence_picker(*, key: str, videos_only: bool = False):
    """Choose a video or image group; returns (video_id | None, group_id | None, title)."""
    from endolite.storage import media

    con = cursor()
    options = [("video", v.id, f"video {v.id}: {v.title}") for v in media.list_videos(con)]
    if not videos_only:
        options += [("group", g.id, f"images {g.id}: {g.title}") for g in media.list_groups(con)]
    if not options:
        st.info("Nothing imported yet: upload videos or images first.")
        st.stop()
    choice = st.selectbox("Sequence", options, key=key, format_func=lambda o: o[2])
    kind, item_id, title = choice
    return (item_id, None, title) if kind == "video" else (None, item_id, title)


def frame_navigator(frames, *, key: str):
    """Prev / next (shortcuts ``j`` / ``k``) over ``frames`` (a list of records.Frame, or a
    ``media.FramePages``: then only the count and the current frame's page are read); returns
    the current one (None if empty)."""
    if not frames:
        st.info("This sequence has no frames yet: extract some first.")
        link_to("views/extract.py", "Extract frames", ":material/movie:")
        return None
    state_key = f"{key}_index"
    index = min(st.session_state.get(state_key, 0), len(frames) - 1)
    prev, pos, nxt = st.columns([1, 3, 1])
    if prev.button("◀ Prev", key=f"{key}_prev", shortcut="j", disabled=index == 0):
        index -= 1
    if nxt.button("Next ▶", key=f"{key}_next", shortcut="k", disabled=index >= len(frames) - 1):
        index += 1
    index = max(0, min(index, len(frames) - 1))
    st.session_state[state_key] = index
    frame = frames[index]
    name = frame.original_name or f"frame #{frame.frame_number}"
    pos.markdown(f"**{index + 1} / {len(frames)}** — {md(name)} (id {frame.id})"
                 + (" · context frame" if frame.is_context else ""))
    return frame


@st.cache_resource(show_spinner="Loading the segmentation engine…")
def _segmenter_for(data_dir: str, checkpoint: str | None):
    from endolite.segment import engine_for

    return engine_for(Settings(Path(data_dir)))


def segmenter():
    """The process's segmentation engine (SAM when a checkpoint is configured, else classical)."""
    import os

    return _segmenter_for(str(settings().data_dir), os.environ.get("ENDOLITE_SAM_CHECKPOINT"))


@st.cache_resource(max_entries=8, show_spinner="Computing the image embedding…")
def _embedding_for(engine_name: str, frame_sha: str, path: str):
    from endolite.media import read_image

    return segmenter().embed(read_image(path), key=frame_sha)


def embedding(frame):
    """The engine's embedding of ``frame`` (SAM: from the disk cache when precomputed)."""
    engine = segmenter()
    return _embedding_for(engine.name, frame.sha256, str(settings().absolute(frame.path)))


def start_job(kind: str, work, *, params: dict, created_by: str):
    """Run ``work(cursor, progress)`` as a background job (``endolite.jobs``) on the process's
    connection; returns the Job.  Check the role before calling (the work checks again)."""
    from endolite import jobs

    return jobs.start(_connection_for(str(settings().data_dir)), kind, work, params=params,
                      created_by=created_by)


def job_connection():
    """The process's connection, for a service that starts its own background job (the job
    thread takes cursors of it; a rerun's ``cursor()`` is not shared with threads)."""
    return _connection_for(str(settings().data_dir))


@st.fragment(run_every=1.0)
def job_progress(job_id: int, *, label: str) -> None:
    """Job ``job_id``'s progress bar ("<label>: <message>"), polled every second; once the
    job has ended, the whole page reruns to show its outcome (the page reads the job itself)."""
    from endolite.records import JobStatus
    from endolite.storage import jobs

    job = jobs.get(cursor(), job_id)
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        st.progress(min(max(job.progress, 0.0), 1.0), text=f"{label}: {md(job.message or 'starting')}")
        return
    st.rerun(scope="app")


def link_to(page: str, label: str, icon: str | None = None) -> None:
    """A link to another page; plain text when the page runs outside the app's navigation (AppTest)."""
    from streamlit.errors import StreamlitAPIException

    try:
        st.page_link(page, label=label, icon=icon)
    except StreamlitAPIException:
        st.caption(f"→ {label}")


def start_precompute(frames, *, around: int):
    """Embed ``frames`` (records.Frame) in a background job of the signed-in user, nearest to
    frame number ``around`` first (services.segmentation.precompute; role checked up front)."""
    from dataclasses import replace

    from endolite import jobs
    from endolite.services import Action
    from endolite.services import segmentation

    here = ctx()
    here.check(Action.EMBED_PRECOMPUTE)
    engine, frames = segmenter(), list(frames)

    def work(cur, progress):
        result = segmentation.precompute(
            replace(here, con=cur), engine, frames, around=around,
            progress=lambda done, total: progress(done / max(total, 1), f"{done} / {total} frames"))
        return {"computed": result.computed, "cached": result.cached, "failed": len(result.failed)}

    return jobs.start(_connection_for(str(settings().data_dir)), "embed", work,
                      params={"frames": len(frames), "around": around}, created_by=here.actor.name)
