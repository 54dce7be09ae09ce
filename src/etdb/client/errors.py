"""The client's one error type, below every client module that raises or catches it."""

__all__ = ["ClientError"]


class ClientError(Exception):
    """The server refused a request or answered something unusable; the message says which
    parameter (when the server named one) and why."""

    def __init__(self, message: str, *, status: int | None = None, parameter: str | None = None):
        super().__init__(message)
        self.status = status
        self.parameter = parameter
