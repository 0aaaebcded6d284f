"""Provider plugins for agora in Python.

A plugin is a program named agora-provider-NAME that agora starts and talks
to over gRPC. Write a class with ``describe`` and ``complete`` (optionally
``count_tokens`` and ``embed``) and hand an instance to :func:`serve`::

    import agora_plugin as ap

    class Echo(ap.Provider):
        def describe(self):
            return ap.Description(name="echo", models=[ap.Model("echo-1", input_price=0.5, output_price=1)])

        def complete(self, request):
            text = request.messages[-1].content
            return ap.Completion(text=text, usage=ap.Usage(len(text) // 4, len(text) // 4))

    if __name__ == "__main__":
        ap.serve(Echo())

``complete`` makes ONE attempt: agora applies the rate limits, retries,
timeouts and budgets itself. Raise :class:`Retryable`, :class:`RateLimited`
or :class:`Fatal` (or what :func:`http_error` returns for an HTTP answer)
to say what agora should do about a failure; any other exception is
permanent, unless the call's deadline (agora's attempt timeout) has passed.
Requests arrive on several threads at once.

A provider that sells batches at a batch price (protocol version 2) also
defines ``submit_batch``, ``find_batch``, ``get_batch``, ``cancel_batch``
and ``batch_results`` (optionally ``batch_limits``): see :class:`Provider`.
"""

from __future__ import annotations

import dataclasses
import email.utils
import enum
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = [
    "BatchItem",
    "BatchLimits",
    "BatchResult",
    "BatchStatus",
    "BatchSubmission",
    "Completion",
    "Description",
    "Fatal",
    "FindResult",
    "Found",
    "Message",
    "Model",
    "PluginError",
    "Provider",
    "RateLimited",
    "Request",
    "Retryable",
    "Sampling",
    "Usage",
    "http_error",
    "log",
    "serve",
]


@dataclasses.dataclass
class Model:
    """One model the provider serves.

    Prices are US dollars per million tokens (0: unknown); agora uses them
    when the spec gives no price. Limits are the account's defaults (0:
    unknown); a spec's limits take precedence. batch_discount is the
    fraction taken off for batch requests (0.5: half price; 0: none or
    unknown).
    """

    id: str
    input_price: float = 0.0
    output_price: float = 0.0
    rpm: int = 0
    tpm: int = 0
    concurrency: int = 0
    batch_discount: float = 0.0


@dataclasses.dataclass
class Description:
    """What ``describe`` returns.

    ``models`` may be empty: agora then sends any model name. When it is
    not, agora refuses a generator whose model is not listed.
    ``unavailable`` says why the provider cannot serve requests now (an API
    key that is not set, say): agora still lists the plugin but refuses to
    run through it, with this reason. ``describe`` should not need
    credentials.
    """

    name: str = ""
    models: List[Model] = dataclasses.field(default_factory=list)
    unavailable: str = ""


@dataclasses.dataclass
class Message:
    """One chat message; role is system, developer, user or assistant."""

    role: str
    content: str

    def as_dict(self) -> Dict[str, str]:
        """The message as most chat APIs want it: {"role": …, "content": …}."""
        return {"role": self.role, "content": self.content}


@dataclasses.dataclass
class Sampling:
    """The decoding parameters of the spec's sampling block.

    None (and max_tokens 0) leaves a parameter to the provider. ``extra``
    holds the spec's sampling.extra entries, decoded from JSON: pass on
    those the provider understands.
    """

    temperature: Optional[float] = None
    top_p: Optional[float] = None
    max_tokens: int = 0
    stop: List[str] = dataclasses.field(default_factory=list)
    seed: Optional[int] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Request:
    """One chat completion to make (one attempt).

    ``deadline`` is the time.monotonic() value at which agora gives up on
    the attempt (its attempt timeout), None when it set none;
    :meth:`time_left` gives the seconds left, for the provider's own
    client timeout.
    """

    model: str
    messages: List[Message]
    sampling: Sampling = dataclasses.field(default_factory=Sampling)
    deadline: Optional[float] = None

    def time_left(self, default: Optional[float] = None) -> Optional[float]:
        """Seconds until the deadline (never negative), or default without one."""
        if self.deadline is None:
            return default
        return max(0.0, self.deadline - time.monotonic())


@dataclasses.dataclass
class Usage:
    """Tokens as the provider billed them."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclasses.dataclass
class Completion:
    """One answer. finish_reason is in OpenAI's terms (stop, length,
    content_filter, tool_calls); model is the model as the provider
    reported it (often a dated version)."""

    text: str
    finish_reason: str = "stop"
    model: str = ""
    id: str = ""
    usage: Usage = dataclasses.field(default_factory=Usage)
    system_fingerprint: str = ""


class PluginError(Exception):
    """A failed attempt, as the provider saw it. Its message goes into
    agora's messages and log: never put the API key in it.

    retryable: the same request may succeed later. rate_limited: the
    provider refused for a rate limit or an overload; agora lowers its
    concurrency for a while (implies retryable). retry_after: the seconds
    the provider asked to wait, None when it did not say. status and code:
    the provider's HTTP status and error code or type, when known.
    """

    def __init__(self, message: str, *, retryable: bool = False, rate_limited: bool = False,
                 retry_after: Optional[float] = None, status: int = 0, code: str = ""):
        super().__init__(message)
        self.message = message
        self.rate_limited = rate_limited
        self.retryable = retryable or rate_limited
        self.retry_after = retry_after
        self.status = status
        self.code = code


class Retryable(PluginError):
    """A failure worth retrying: a dropped connection, a timeout, a 5xx."""

    def __init__(self, message: str, **kw: Any):
        kw["retryable"] = True
        super().__init__(message, **kw)


class RateLimited(Retryable):
    """A rate limit or an overload (429, 529); retry_after in seconds."""

    def __init__(self, message: str, retry_after: Optional[float] = None, **kw: Any):
        kw["rate_limited"] = True
        super().__init__(message, retry_after=retry_after, **kw)


class Fatal(PluginError):
    """A permanent failure: retrying the same request cannot help (a bad
    request, a wrong key, an unknown model). The step fails with it."""

    def __init__(self, message: str, **kw: Any):
        kw["retryable"] = False
        kw["rate_limited"] = False
        super().__init__(message, **kw)


# The batch calls (protocol version 2).

@dataclasses.dataclass
class BatchLimits:
    """The most one batch takes: requests, and bytes of the requests' JSON
    encoding (0: no bound of the provider's own)."""

    max_requests: int = 0
    max_bytes: int = 0


@dataclasses.dataclass
class BatchItem:
    """One request of a batch; custom_id (1 to 20 characters of [a-z0-9-],
    unique in the batch) names its result."""

    custom_id: str
    request: Request


@dataclasses.dataclass
class BatchSubmission:
    """One batch to make. key is agora's name for it (1 to 40 characters of
    [A-Za-z0-9_-]): record it with the batch at the provider (metadata, a
    name) so that ``find_batch`` finds it. window is the completion window
    the spec asks for ("24h"; a provider with a fixed one ignores it)."""

    key: str
    model: str
    items: List[BatchItem]
    window: str = ""


@dataclasses.dataclass
class BatchStatus:
    """A batch as the provider last reported it. status is the provider's
    word for its state (in_progress, canceling, ended, …); ended says it
    will not change any more and its results can be read; completed and
    failed count the requests with a result so far; message says why a
    batch failed, when it did."""

    id: str
    status: str = ""
    ended: bool = False
    total: int = 0
    completed: int = 0
    failed: int = 0
    message: str = ""


class Found(enum.Enum):
    """What ``find_batch`` found."""

    ABSENT = 0  # no batch was made with the key
    FOUND = 1  # the batch was made: FindResult.batch is it
    UNKNOWN = 2  # the provider cannot tell yet (FindResult.why says why)


@dataclasses.dataclass
class FindResult:
    """What ``find_batch`` returns: ``FindResult(Found.FOUND, batch)``,
    ``FindResult(Found.ABSENT)``, or ``FindResult(Found.UNKNOWN, why=…)``
    when the provider cannot tell yet (its batch list lags behind, say):
    agora asks again later and submits nothing meanwhile."""

    found: Found
    batch: Optional[BatchStatus] = None
    why: str = ""


@dataclasses.dataclass
class BatchResult:
    """One request's outcome: a completion (billed at the batch price), or
    an error. An error that is retryable (:class:`Retryable`: expired,
    cancelled, a server error) cost nothing and agora sends the request
    again; any other (:class:`Fatal`) is permanent."""

    custom_id: str
    completion: Optional[Completion] = None
    error: Optional[PluginError] = None


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            408: "Request Timeout", 409: "Conflict", 413: "Request Entity Too Large", 422: "Unprocessable Entity",
            425: "Too Early", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout", 529: "Overloaded"}


def http_error(status: int, headers: Optional[Mapping[str, str]] = None, message: str = "", code: str = "") -> PluginError:
    """Classify an HTTP error answer, as agora's Go SDK does.

    429 and 529 (overloaded) are rate limits, honouring the headers
    retry-after-ms and Retry-After (seconds or an HTTP date); 408, 409, 425
    and 5xx are retryable; anything else is fatal. message is the
    provider's message, code its error type. Raise what it returns.
    """
    text = f"{status} {code or _REASONS.get(status, 'HTTP error')}"
    if message:
        text += ": " + message
    if status in (429, 529):
        return RateLimited(text, retry_after=_retry_after(headers), status=status, code=code)
    if status in (408, 409, 425) or status >= 500:
        return Retryable(text, status=status, code=code)
    return Fatal(text, status=status, code=code)


def _retry_after(headers: Optional[Mapping[str, str]], now: Optional[float] = None) -> Optional[float]:
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            v = float(ms)
            if v >= 0:
                return v / 1000
        except ValueError:
            pass
    ra = lower.get("retry-after")
    if ra is None:
        return None
    try:
        v = float(ra)
        return v if v >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Provider:
    """A base class for providers (optional: any object with the same
    methods will do).

    Required: ``describe() -> Description`` and
    ``complete(request: Request) -> Completion``. Optional, and offered to
    agora only when defined: ``count_tokens(model: str, messages:
    list[Message]) -> int`` (for ``agora plan -plugin-tokens``) and
    ``embed(model: str, inputs: list[str]) -> list[list[float]]`` or
    ``(vectors, Usage)`` (one vector per input, in order, for the diversity
    metric). All of them raise the errors of this module.

    Batches (protocol version 2), offered to agora only when all five are
    defined (agora keeps the state, the money and the retries; these only
    talk to the provider):

    - ``submit_batch(submission: BatchSubmission) -> BatchStatus`` makes
      the batch, once: never retry a creation whose answer was lost (agora
      calls ``find_batch``). :class:`Fatal` (or any other exception) says
      the provider refused it and none was made; :class:`Retryable` that it
      may or may not have been made.
    - ``find_batch(key: str, count: int, since: datetime) -> FindResult``
      finds the batch a ``submit_batch`` with key made, of count requests,
      created after since (UTC). Declared with a keyword parameter
      ``known_ids``, it also gets the ids of the batches agora already
      knows (a frozenset): never the one asked for, so a provider that
      recognises its batch only by its results can skip them.
    - ``get_batch(id: str) -> BatchStatus``;
      ``cancel_batch(id: str) -> BatchStatus`` asks the provider to stop
      it (what it completed is still read with ``batch_results``).
    - ``batch_results(id: str) -> Iterable[BatchResult]``: an ended batch's
      results, in any order; write it as a generator, so that a large
      batch is streamed, not held in memory.
    - optionally ``batch_limits() -> BatchLimits``, the provider's bounds
      on one batch.
    """

    def describe(self) -> Description:
        return Description()

    def complete(self, request: Request) -> Completion:
        raise Fatal(f"{type(self).__name__} does not implement complete")


EmbedResult = Union[Sequence[Sequence[float]], Tuple[Sequence[Sequence[float]], Usage]]
BatchResults = Iterable[BatchResult]

# The methods a provider defines to take batches.
BATCH_METHODS = ("submit_batch", "find_batch", "get_batch", "cancel_batch", "batch_results")

from ._log import log  # noqa: E402
from ._serve import serve  # noqa: E402
