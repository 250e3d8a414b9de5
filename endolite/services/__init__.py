"""The service layer: one function per action, called by the pages and the CLI alike.

Each takes a ``Ctx`` (cursor, settings, acting user), checks the actor's role against the
permission matrix (``access.MATRIX``, rendered in docs/PERMISSIONS.md), does the work through
the core modules, and writes the audit entry.  Modules: ``masks``, ``annotations`` (frame
labels, segments), ``labels``, ``media`` (upload, server import, extraction), ``benchmarks``,
``users`` (login, sessions, accounts), ``settings``, ``audit_log``, ``maintenance`` (check,
backup), ``segmentation`` (embedding precompute).  Export and training actions go here too.
"""

from endolite.services.access import MATRIX, Action, Actor, Ctx, Rule, allowed

__all__ = ["MATRIX", "Action", "Actor", "Ctx", "Rule", "allowed"]
