"""Maintenance: does the database agree with data/ (``check`` / ``repair``)."""

from endolite.maintenance.check import CheckReport, Problem, ProblemKind, check, repair

__all__ = ["CheckReport", "Problem", "ProblemKind", "check", "repair"]
