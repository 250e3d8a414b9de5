"""Exports of annotations to other tools' formats (lx-annotate frame-annotation table, ...)."""
