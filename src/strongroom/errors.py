"""The errors every service raises, so the server and CLI can turn them into one kind of answer.

Each carries reasons written for the person who asked: what is wrong and what to do about it.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


class ServiceError(Exception):
    """Base: ``reasons`` are sentences for a person; ``status`` names the HTTP-ish outcome."""

    status = "invalid"

    def __init__(self, reasons: str | Sequence[str]):
        self.reasons = [reasons] if isinstance(reasons, str) else list(reasons)
        super().__init__("; ".join(self.reasons))


class Invalid(ServiceError):
    """The request itself is wrong (bad field, bad range, bad value)."""


class DataRefusal(Invalid):
    """Refused while or after reading participants' data: whether it happens can depend on
    their values, so the output service answers it as a blocked output, rationed like any
    output the check acted on, never as an error that answers for free."""


PLATFORM_FAILED = (  # no apostrophe: the output check's reasons quote text between two
    "the platform could not complete this on the data; a failure met once the data are read "
    "can hang on the values of participants, so it is answered as refused by the data, as "
    "any such refusal is (the team of the custodian sees that it failed, never a value): ask "
    "differently, or tell them if it recurs")


def is_failure(error: BaseException) -> bool:
    """Whether ``error`` is a failure of the platform's code or its libraries, to be answered
    as one: any Exception, and a Rust library's panic. PyO3's ``PanicException`` (Polars',
    the cryptography package's: each library has its own) derives from BaseException, so
    ``except Exception`` let it through: a date past Polars' range on one participant's row
    panicked outside every handler, a 500 and a run left running, for no answer (a red
    team's bisection read BMI to 0.12). Never an interrupt, an exit or a cancellation."""
    return isinstance(error, Exception) or any(
        kind.__name__ == "PanicException" for kind in type(error).__mro__)


@contextmanager
def failures_are_answers() -> Iterator[None]:
    """Around work that reads participants' data: an error of the platform's own met there (a
    library's, a memory or file error, a library's panic: not a ServiceError) can hang on
    their values as a refusal can, so it is a DataRefusal too, answered and rationed like
    one, never a free error. It is logged by its kind and the line it was raised at only:
    its message might quote a value."""
    try:
        yield
    except ServiceError:
        raise
    except BaseException as error:
        if not is_failure(error):
            raise
        log_failure(logging.getLogger(__name__), error, "a request failed once it had read "
                    "participants' data (answered as refused by the data)")
        raise DataRefusal(PLATFORM_FAILED) from None


def log_failure(log: logging.Logger, error: BaseException, what: str, *args: object) -> None:
    """Log a failure met on participants' data (``what`` % ``args``) by its kind and where it
    was raised (each frame's file, line and function), never by its message, which might
    quote a value: a library's parse error names the text it could not read, and a job's
    file or a definition's rows are participants' values until they are checked."""
    frames = traceback.extract_tb(error.__traceback__)
    where = " < ".join(f"{f.filename}:{f.lineno} ({f.name})" for f in reversed(frames)) or "?"
    log.error(what + ": %s at %s", *args, type(error).__name__, where)


@contextmanager
def reading_data() -> Iterator[None]:
    """Around work that reads participants' data: any refusal inside is a DataRefusal, and
    so is any failure of the platform's own (:func:`failures_are_answers`)."""
    try:
        with failures_are_answers():
            yield
    except DataRefusal:
        raise
    except Invalid as refusal:
        raise DataRefusal(refusal.reasons) from None


class NotFound(ServiceError):
    status = "not-found"


class Conflict(ServiceError):
    """The request clashes with the current state (already revoked, name taken, …)."""

    status = "conflict"


class Unauthenticated(ServiceError):
    """No valid identity: wrong credentials, expired session or token."""

    status = "unauthenticated"


class Refused(ServiceError):
    """A known identity may not do this now; the reasons say who-may or when-may failed."""

    status = "forbidden"


class RateLimited(ServiceError):
    status = "rate-limited"

    def __init__(self, reasons: str | Sequence[str], retry_after: int):
        super().__init__(reasons)
        self.retry_after = retry_after


class Unavailable(ServiceError):
    """The platform cannot decide safely (e.g. its control state is unreadable): fail closed."""

    status = "unavailable"
