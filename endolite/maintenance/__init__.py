"""Maintenance: does the database agree with data/ (``check`` / ``repair``), and copies of a
data directory (``backup`` / ``restore``).  The CLI (``endolite check``, ``backup``,
``restore``) and the admin page call these."""

from endolite.maintenance.backup import BackupResult, RestoreResult, backup, restore
from endolite.maintenance.check import CheckReport, Problem, ProblemKind, check
from endolite.maintenance.repair import CheckRun, repair, run_check

__all__ = ["BackupResult", "CheckReport", "CheckRun", "Problem", "ProblemKind", "RestoreResult",
           "backup", "check", "repair", "restore", "run_check"]
