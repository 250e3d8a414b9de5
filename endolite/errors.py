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
