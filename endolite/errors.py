"""Errors a person can act on.  Pages show them with ``st.error``; the CLI prints them."""


class EndoliteError(Exception):
    """Base class: the message names the file/field and the reason."""


class InvalidInput(EndoliteError):
    """A file, field or option that cannot be used as given."""


class NotFound(EndoliteError):
    """A record id or name that does not exist."""


class DatabaseBusy(EndoliteError):
    """The database file is held by another process (usually the running dashboard)."""


class AuthError(EndoliteError):
    """Wrong user name / password, missing role, or a bad setup code."""


class PermissionDenied(AuthError):
    """The acting user's role does not allow the action (the message names user, role, action)."""


class Conflict(EndoliteError):
    """Someone else changed the record since it was read (a stale version); nothing was written."""


class StorageError(EndoliteError):
    """The disk is full, a file size limit was hit, or the data directory is not writable."""


def describe_os_error(exc: OSError, *, doing: str | None = None) -> StorageError:
    """A StorageError naming the cause of an OSError from writing (ENOSPC, EFBIG, EROFS, EACCES)."""
    import errno

    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    what = f"{doing}: " if doing else ""
    causes = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
              errno.EFBIG: "a file size limit was reached (disk full or RLIMIT_FSIZE)",
              errno.EROFS: "the data directory is on a read-only file system",
              errno.EACCES: "permission denied: the data directory is not writable by this process",
              errno.EPERM: "operation not permitted on the data directory"}
    cause = causes.get(exc.errno, exc.strerror or str(exc))
    return StorageError(f"{what}{cause}{where}; nothing already stored was changed")


class ExportRefused(EndoliteError):
    """The export gate or a pre-handover check refused; the message names what and why."""
