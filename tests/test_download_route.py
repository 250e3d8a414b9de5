"""The export download route (endolite.export.route) behind a gzip middleware as Streamlit
mounts it: a live ticket streams the file unchanged and uncompressed (zip and encrypted zip);
an unknown or expired ticket, or a removed file, is a 404."""

from __future__ import annotations

import os

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.testclient import TestClient

from endolite.export import route, tickets


@pytest.fixture
def client():
    app = Starlette(routes=route.routes(), middleware=[Middleware(GZipMiddleware)])
    return TestClient(app)


@pytest.mark.parametrize("name,media_type", [("a.zip", "application/zip"),
                                             ("a.zip.age", "application/octet-stream")])
def test_a_live_ticket_streams_the_file_uncompressed(client, tmp_path, name, media_type):
    path = tmp_path / name
    path.write_bytes(os.urandom(300_000))
    token = tickets.issue(path, user="lena")
    reply = client.get(f"/download/export/{token}", headers={"Accept-Encoding": "gzip"})
    assert reply.status_code == 200 and reply.content == path.read_bytes()
    assert reply.headers["content-type"].startswith(media_type)
    assert reply.headers.get("content-encoding", "identity") == "identity"
    assert reply.headers["content-length"] == str(path.stat().st_size)
    assert f'filename="{name}"' in reply.headers["content-disposition"]


def test_unknown_expired_or_removed_is_404(client, tmp_path):
    path = tmp_path / "b.zip"
    path.write_bytes(b"PK")
    assert client.get("/download/export/not-a-token").status_code == 404
    expired = tickets.issue(path, user="lena", ttl_s=-1)
    assert client.get(f"/download/export/{expired}").status_code == 404
    live = tickets.issue(path, user="lena")
    path.unlink()
    assert client.get(f"/download/export/{live}").status_code == 404
