"""serve(): the go-plugin side of agora's plugin protocol (docs/plugins.md).

In order: the cookie, SIGINT ignored, the protocol version, a gRPC server
with the provider, health and controller services on a Unix socket with
mutual TLS, the handshake line on stdout (then stdout goes to stderr), the
parent watch, and the wait for agora's Shutdown.
"""

from __future__ import annotations

import base64
import datetime
import faulthandler
import inspect
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from concurrent import futures
from typing import Any, Callable, Iterator, List, Optional, Sequence

import grpc

# The package's public types are defined before it imports this module.
from . import (BATCH_METHODS, BatchItem, BatchLimits, BatchResult, BatchStatus, BatchSubmission, Completion, Description,
               FindResult, Found, Message, PluginError, Request, Sampling, Usage, _log, _tls)
from . import provider_pb2 as pb

COOKIE_KEY = "AGORA_PLUGIN"
COOKIE_VALUE = "provider-c1d6f4a2"
CORE_PROTOCOL_VERSION = 1
# The versions of provider.proto this SDK speaks: 1 (Describe, Complete,
# CountTokens, Embed) and 2, which adds the batch calls.
PROTOCOL_VERSIONS = (1, 2)
BATCH_VERSION = 2

_log_ = _log.log


def serve(provider: Any, *, max_workers: int = 128, protocol_versions: Sequence[int] = PROTOCOL_VERSIONS) -> None:
    """Serve provider to agora until agora ends the plugin, then exit.

    It never returns: the process exits with status 0 when agora calls
    Shutdown (after calling the provider's close(), if it has one), and
    with status 2 when agora goes away without a word. Run by hand (without
    agora's cookie) it says so and exits 1. max_workers bounds the requests
    served at once (each on its own thread); agora's concurrency limits
    apply before that. protocol_versions are the provider protocol
    versions the plugin offers agora, which picks the newest both speak:
    (1,) makes it a plugin of the first protocol, without batches, as an
    older agora sees every plugin.
    """
    bad = [v for v in protocol_versions if v not in PROTOCOL_VERSIONS]
    if bad or not protocol_versions:
        raise ValueError(f"protocol_versions {list(protocol_versions)}: this SDK speaks {list(PROTOCOL_VERSIONS)}")
    if os.environ.get(COOKIE_KEY) != COOKIE_VALUE:
        sys.stderr.write("This is an agora provider plugin: agora starts it (agora plugins lists the plugins it finds); "
                         "it is not meant to be run by hand.\n")
        sys.exit(1)
    # agora decides when its plugins stop: a Ctrl-C meant for it is not ours.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A crash in native code leaves the crashing thread's Python traceback
    # on stderr, which agora shows when the plugin crashes twice (the
    # other threads' would push it out of the lines agora keeps).
    faulthandler.enable(all_threads=False)
    _log.install()

    version = negotiate(os.environ.get("PLUGIN_PROTOCOL_VERSIONS", ""), protocol_versions)
    stop = threading.Event()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                         options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
    server.add_generic_rpc_handlers(handlers(provider, stop, version))

    made_dir = None
    sock_dir = os.environ.get("PLUGIN_UNIX_SOCKET_DIR")
    if not sock_dir:
        sock_dir = made_dir = tempfile.mkdtemp(prefix="agora-plugin-")
    sock = os.path.join(sock_dir, f"plugin-{os.getpid()}.sock")
    client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "")
    cert_field = ""
    if client_cert:
        key_pem, cert_pem, cert_der = _tls.self_signed()
        creds = grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=client_cert.encode(),
                                            require_client_auth=True)
        server.add_secure_port("unix:" + sock, creds)
        cert_field = base64.b64encode(cert_der).decode().rstrip("=")
    else:
        # agora always asks for AutoMTLS; a client that does not gets plaintext.
        server.add_insecure_port("unix:" + sock)
    server.start()
    _watch_parent(os.getppid(), 0.5, lambda: _exit(2, server, made_dir))

    line = f"{CORE_PROTOCOL_VERSION}|{version}|unix|{sock}|grpc|{cert_field}"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    # Keep stdout quiet from now on: a stray print() goes to stderr, hence
    # into agora's log.
    os.dup2(2, 1)
    _log_.debug("serving", extra={"socket": sock, "protocol": version})

    while not stop.wait(3600):
        pass
    try:
        close = getattr(provider, "close", None)
        if callable(close):
            close()
    except Exception:  # noqa: BLE001
        _log_.error("close failed", exc_info=True)
    _exit(0, server, made_dir)


def negotiate(offered: str, speaks: Sequence[int] = PROTOCOL_VERSIONS) -> int:
    """The protocol version to serve: the highest of speaks (the versions
    the plugin offers) that PLUGIN_PROTOCOL_VERSIONS (comma-separated) has
    too, else the plugin's own highest, which agora then reports as a
    mismatch."""
    theirs = set()
    for v in offered.split(","):
        v = v.strip()
        if not v:
            continue
        try:
            theirs.add(int(v))
        except ValueError:
            _log_.warning("ignoring an invalid version in PLUGIN_PROTOCOL_VERSIONS", extra={"version": v})
    shared = theirs.intersection(speaks)
    return max(shared) if shared else max(speaks)


def _exit(code: int, server: Any, made_dir: Optional[str]) -> None:
    try:
        server.stop(grace=0.5)
    except Exception:  # noqa: BLE001
        pass
    if made_dir:
        shutil.rmtree(made_dir, ignore_errors=True)
    try:
        sys.stderr.flush()
    finally:
        # Not sys.exit: requests still running on worker threads (a hung
        # provider call) must not keep the process alive.
        os._exit(code)


def _watch_parent(ppid: int, every: float, exit: Callable[[], None]) -> None:
    """Call exit once the parent is no longer ppid (it died and the process
    was reparented), so that no plugin outlives an agora killed outright."""
    if ppid <= 1:
        return

    def watch() -> None:
        while True:
            time.sleep(every)
            if os.getppid() != ppid:
                _log_.warning("agora is gone: exiting")
                exit()
                return

    threading.Thread(target=watch, name="agora-parent-watch", daemon=True).start()


# The services agora's host calls. The provider's methods are in one table
# (name → handler, request and response class), so that new operations of
# the protocol are one more entry each.

def handlers(provider: Any, stop: threading.Event, version: int = PROTOCOL_VERSIONS[-1]) -> List[grpc.GenericRpcHandler]:
    """The services, for protocol version: version 1 has no batch calls
    (gRPC answers UNIMPLEMENTED for them)."""
    s = _ProviderService(provider, version)
    unary = grpc.unary_unary_rpc_method_handler
    table = {
        "Describe": (unary, s.describe, pb.DescribeRequest, pb.DescribeResponse),
        "Complete": (unary, s.complete, pb.CompleteRequest, pb.CompleteResponse),
        "CountTokens": (unary, s.count_tokens, pb.CountTokensRequest, pb.CountTokensResponse),
        "Embed": (unary, s.embed, pb.EmbedRequest, pb.EmbedResponse),
    }
    if version >= BATCH_VERSION:
        table.update({
            "SubmitBatch": (grpc.stream_unary_rpc_method_handler, s.submit_batch, pb.SubmitBatchRequest, pb.BatchStatus),
            "FindBatch": (unary, s.find_batch, pb.FindBatchRequest, pb.FindBatchResponse),
            "GetBatch": (unary, s.get_batch, pb.BatchRef, pb.BatchStatus),
            "CancelBatch": (unary, s.cancel_batch, pb.BatchRef, pb.BatchStatus),
            "BatchResults": (grpc.unary_stream_rpc_method_handler, s.batch_results, pb.BatchRef, pb.BatchResult),
        })
    ident = lambda b: b  # noqa: E731

    def shutdown(_req: bytes, _ctx: grpc.ServicerContext) -> bytes:
        _log_.debug("shutdown requested")
        stop.set()
        return b""  # plugin.Empty

    return [
        grpc.method_handlers_generic_handler("agora.provider.v1.Provider", {
            name: kind(fn, req.FromString, resp.SerializeToString)
            for name, (kind, fn, req, resp) in table.items()
        }),
        grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(_health_check, ident, ident),
        }),
        grpc.method_handlers_generic_handler("plugin.GRPCController", {
            "Shutdown": grpc.unary_unary_rpc_method_handler(shutdown, ident, ident),
        }),
    ]


def _health_check(req: bytes, ctx: grpc.ServicerContext) -> bytes:
    """grpc.health.v1.Health/Check, without generated code (health.proto):
    the request's field 1 is the service name; SERVING is the response
    bytes 08 01 (field 1, varint 1)."""
    service = _string_field1(req)
    if service not in ("", "plugin"):
        ctx.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {service!r}")
    return b"\x08\x01"


def _string_field1(msg: bytes) -> str:
    i, out = 0, ""
    while i < len(msg):
        key, i = _varint(msg, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _varint(msg, i)
        elif wire == 2:
            n, i = _varint(msg, i)
            if field == 1:
                out = msg[i:i + n].decode("utf-8", "replace")
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            break
    return out


def _varint(b: bytes, i: int):
    shift = value = 0
    while i < len(b):
        c = b[i]
        i += 1
        value |= (c & 0x7F) << shift
        if not c & 0x80:
            break
        shift += 7
    return value, i


class _ProviderService:
    """agora.provider.v1.Provider over the author's provider object."""

    def __init__(self, provider: Any, version: int = PROTOCOL_VERSIONS[-1]):
        self.p = provider
        self.version = version

    def describe(self, _req: pb.DescribeRequest, ctx: grpc.ServicerContext) -> pb.DescribeResponse:
        try:
            d = self.p.describe()
        except Exception as e:  # noqa: BLE001
            _log_.error("describe failed", exc_info=True)
            ctx.abort(grpc.StatusCode.UNAVAILABLE, _message(e))
        if not isinstance(d, Description):
            ctx.abort(grpc.StatusCode.INTERNAL, f"describe returned {type(d).__name__}, not an agora_plugin.Description")
        out = pb.DescribeResponse(name=d.name, unavailable=d.unavailable, capabilities=pb.Capabilities(
            count_tokens=callable(getattr(self.p, "count_tokens", None)),
            embeddings=callable(getattr(self.p, "embed", None))))
        batches = self._batches(ctx)
        if batches and self.version >= BATCH_VERSION:
            out.capabilities.batches = True
            limits = BatchLimits()
            fn = getattr(self.p, "batch_limits", None)
            if callable(fn):
                try:
                    limits = fn()
                except Exception as e:  # noqa: BLE001
                    _log_.error("batch_limits failed", exc_info=True)
                    ctx.abort(grpc.StatusCode.UNAVAILABLE, _message(e))
                if not isinstance(limits, BatchLimits):
                    ctx.abort(grpc.StatusCode.INTERNAL,
                              f"batch_limits returned {type(limits).__name__}, not an agora_plugin.BatchLimits")
            out.capabilities.batch_limits.max_requests = int(limits.max_requests)
            out.capabilities.batch_limits.max_bytes = int(limits.max_bytes)
        for m in d.models:
            pm = out.models.add(id=m.id)
            if m.input_price or m.output_price:
                pm.price.input_per_mtok, pm.price.output_per_mtok = float(m.input_price), float(m.output_price)
                pm.price.batch_discount = float(m.batch_discount)
            if m.rpm or m.tpm or m.concurrency:
                pm.limits.requests_per_minute, pm.limits.tokens_per_minute, pm.limits.concurrency = m.rpm, m.tpm, m.concurrency
        return out

    def complete(self, r: pb.CompleteRequest, ctx: grpc.ServicerContext) -> pb.CompleteResponse:
        try:
            c = self.p.complete(_request(r, _deadline(ctx)))
            if not isinstance(c, Completion):
                raise TypeError(f"complete returned {type(c).__name__}, not an agora_plugin.Completion")
        except Exception as e:  # noqa: BLE001
            return pb.CompleteResponse(error=_wire_error(e, ctx, "complete"))
        return pb.CompleteResponse(completion=_wire_completion(c))

    def count_tokens(self, r: pb.CountTokensRequest, ctx: grpc.ServicerContext) -> pb.CountTokensResponse:
        fn = getattr(self.p, "count_tokens", None)
        if not callable(fn):
            ctx.abort(grpc.StatusCode.UNIMPLEMENTED, "this provider does not count tokens")
        try:
            n = int(fn(r.model, _messages(r.messages)))
        except Exception as e:  # noqa: BLE001
            _abort(ctx, _wire_error(e, ctx, "count_tokens"))
        return pb.CountTokensResponse(tokens=n)

    def embed(self, r: pb.EmbedRequest, ctx: grpc.ServicerContext) -> pb.EmbedResponse:
        fn = getattr(self.p, "embed", None)
        if not callable(fn):
            ctx.abort(grpc.StatusCode.UNIMPLEMENTED, "this provider does not serve embeddings")
        try:
            res = fn(r.model, list(r.inputs))
            usage = Usage()
            if isinstance(res, tuple) and len(res) == 2 and isinstance(res[1], Usage):
                res, usage = res
            vectors = [[float(x) for x in v] for v in res]
            if len(vectors) != len(r.inputs):
                raise TypeError(f"embed returned {len(vectors)} vectors for {len(r.inputs)} inputs")
        except Exception as e:  # noqa: BLE001
            _abort(ctx, _wire_error(e, ctx, "embed"))
        out = pb.EmbedResponse(usage=pb.Usage(input_tokens=int(usage.input_tokens), output_tokens=int(usage.output_tokens)))
        for v in vectors:
            out.embeddings.add(values=v)
        return out


    # The batch calls (protocol version 2), with the Go SDK's checks and
    # statuses: an invalid submission is INVALID_ARGUMENT, a refused one
    # FAILED_PRECONDITION (no batch was made), the other failures as
    # CountTokens and Embed report them.

    def _batches(self, ctx: grpc.ServicerContext) -> bool:
        """Whether the provider takes batches: it defines all five batch
        methods (some but not all is a mistake, which Describe reports)."""
        have = [m for m in BATCH_METHODS if callable(getattr(self.p, m, None))]
        if have and len(have) < len(BATCH_METHODS):
            missing = [m for m in BATCH_METHODS if m not in have]
            ctx.abort(grpc.StatusCode.INTERNAL, f"{type(self.p).__name__} defines {', '.join(have)} but not "
                      f"{', '.join(missing)}: a provider that takes batches defines all of {', '.join(BATCH_METHODS)}")
        return bool(have)

    def _batch_method(self, name: str, ctx: grpc.ServicerContext) -> Callable[..., Any]:
        fn = getattr(self.p, name, None)
        if not callable(fn) or not self._batches(ctx):
            ctx.abort(grpc.StatusCode.UNIMPLEMENTED, "this provider takes no batches")
        return fn

    def submit_batch(self, stream: Iterator[pb.SubmitBatchRequest], ctx: grpc.ServicerContext) -> pb.BatchStatus:
        fn = self._batch_method("submit_batch", ctx)
        first = next(stream, None)
        if first is None or first.WhichOneof("part") != "header":
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "a batch starts with its header")
        h = first.header
        if not _BATCH_KEY.fullmatch(h.key):
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, f"batch key {h.key!r} is not 1 to 40 characters of [A-Za-z0-9_-]")
        items: List[BatchItem] = []
        seen = set()
        for m in stream:
            if m.WhichOneof("part") != "item":
                ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "a batch has one header, then items")
            cid = m.item.custom_id
            if not _CUSTOM_ID.fullmatch(cid) or cid in seen:
                ctx.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"custom id {cid!r} is not 1 to 20 characters of [a-z0-9-] unique in the batch")
            seen.add(cid)
            try:
                req = _request(m.item.request, None)
            except ValueError as e:  # sampling.extra that is not JSON
                ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, f"custom id {cid}: {e}")
            items.append(BatchItem(custom_id=cid, request=req))
        if not items or len(items) != h.count:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the header announces {h.count} requests; {len(items)} came")
        try:
            st = fn(BatchSubmission(key=h.key, model=h.model, items=items, window=h.window))
        except Exception as e:  # noqa: BLE001
            w = _wire_error(e, ctx, "submit_batch")
            if not w.retryable and not w.timed_out:
                # Refused: no batch was made.
                ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{w.message} (HTTP {w.status})" if w.status else w.message)
            _abort(ctx, w)
        try:
            _check_status(st, "submit_batch")
        except TypeError as e:
            # Not a refusal: the batch may well have been made, and agora
            # looks it up by its key.
            _log_.error(str(e))
            ctx.abort(grpc.StatusCode.INTERNAL, str(e))
        return _wire_batch(st)

    def find_batch(self, r: pb.FindBatchRequest, ctx: grpc.ServicerContext) -> pb.FindBatchResponse:
        fn = self._batch_method("find_batch", ctx)
        since = _utc(r.since_unix_ms)
        try:
            if _takes_known_ids(fn):
                res = fn(r.key, int(r.count), since, known_ids=frozenset(r.known_ids))
            else:
                res = fn(r.key, int(r.count), since)
            if not isinstance(res, FindResult) or not isinstance(res.found, Found):
                raise TypeError(f"find_batch returned {type(res).__name__}, not an agora_plugin.FindResult")
            if res.found is Found.FOUND:
                batch = _check_status(res.batch, "find_batch's FindResult.batch")
        except Exception as e:  # noqa: BLE001
            _abort(ctx, _wire_error(e, ctx, "find_batch"))
        if res.found is Found.FOUND:
            return pb.FindBatchResponse(found=pb.FindBatchResponse.FOUND, batch=_wire_batch(batch))
        if res.found is Found.UNKNOWN:
            return pb.FindBatchResponse(found=pb.FindBatchResponse.UNKNOWN, why=res.why)
        return pb.FindBatchResponse(found=pb.FindBatchResponse.ABSENT)

    def get_batch(self, r: pb.BatchRef, ctx: grpc.ServicerContext) -> pb.BatchStatus:
        return self._batch_call("get_batch", r, ctx)

    def cancel_batch(self, r: pb.BatchRef, ctx: grpc.ServicerContext) -> pb.BatchStatus:
        return self._batch_call("cancel_batch", r, ctx)

    def _batch_call(self, name: str, r: pb.BatchRef, ctx: grpc.ServicerContext) -> pb.BatchStatus:
        fn = self._batch_method(name, ctx)
        try:
            st = _check_status(fn(r.id), name)
        except Exception as e:  # noqa: BLE001
            _abort(ctx, _wire_error(e, ctx, name))
        return _wire_batch(st)

    def batch_results(self, r: pb.BatchRef, ctx: grpc.ServicerContext) -> Iterator[pb.BatchResult]:
        """The provider's results, one message each as its iterator yields
        them: a generator is read as agora reads the stream, never whole."""
        fn = self._batch_method("batch_results", ctx)
        failed = None
        try:
            for res in fn(r.id):
                yield _wire_result(res)
        except Exception as e:  # noqa: BLE001
            failed = _wire_error(e, ctx, "batch_results")
        if failed is not None:
            _abort(ctx, failed)


def _utc(unix_ms: int) -> datetime.datetime:
    """A time in Unix milliseconds as a UTC datetime; one before the year 1
    (Go's zero time, say) is the earliest datetime."""
    try:
        return datetime.datetime.fromtimestamp(unix_ms / 1000, tz=datetime.timezone.utc)
    except (ValueError, OverflowError, OSError):
        if unix_ms > 0:
            return datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)
        return datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


_BATCH_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}")
_CUSTOM_ID = re.compile(r"[a-z0-9-]{1,20}")


def _check_status(st: Any, what: str) -> BatchStatus:
    if not isinstance(st, BatchStatus):
        raise TypeError(f"{what} returned {type(st).__name__}, not an agora_plugin.BatchStatus")
    if not st.id:
        raise TypeError(f"{what} returned a BatchStatus without an id")
    return st


def _wire_batch(st: BatchStatus) -> pb.BatchStatus:
    return pb.BatchStatus(id=st.id, status=st.status, ended=bool(st.ended), total=int(st.total),
                          completed=int(st.completed), failed=int(st.failed), message=st.message)


def _wire_result(res: Any) -> pb.BatchResult:
    """One result for agora: its completion, or its error (retryable as the
    error says; any exception but a PluginError is permanent)."""
    if not isinstance(res, BatchResult):
        raise TypeError(f"batch_results yielded {type(res).__name__}, not an agora_plugin.BatchResult")
    if (res.completion is None) == (res.error is None):
        raise TypeError(f"batch_results yielded a result for {res.custom_id!r} with "
                        f"{'both a completion and an error' if res.error is not None else 'neither a completion nor an error'}")
    if res.error is not None:
        e = res.error
        if isinstance(e, PluginError):
            return pb.BatchResult(custom_id=res.custom_id, error=_plugin_error(e))
        if isinstance(e, BaseException):
            return pb.BatchResult(custom_id=res.custom_id, error=pb.Error(message=_message(e)))
        raise TypeError(f"batch_results yielded an error of type {type(e).__name__}, not an agora_plugin.PluginError")
    if not isinstance(res.completion, Completion):
        raise TypeError(f"batch_results yielded a completion of type {type(res.completion).__name__}, "
                        "not an agora_plugin.Completion")
    return pb.BatchResult(custom_id=res.custom_id, completion=_wire_completion(res.completion))


def _request(r: pb.CompleteRequest, deadline: Optional[float]) -> Request:
    """r in the SDK's terms; ValueError when sampling.extra is not JSON."""
    sp = r.sampling
    sampling = Sampling(
        temperature=sp.temperature if sp.HasField("temperature") else None,
        top_p=sp.top_p if sp.HasField("top_p") else None,
        max_tokens=sp.max_tokens, stop=list(sp.stop),
        seed=sp.seed if sp.HasField("seed") else None,
        extra={k: json.loads(v) for k, v in sp.extra_json.items()})
    return Request(model=r.model, messages=_messages(r.messages), sampling=sampling, deadline=deadline)


def _wire_completion(c: Completion) -> pb.Completion:
    return pb.Completion(
        text=c.text, finish_reason=c.finish_reason, model=c.model, id=c.id, system_fingerprint=c.system_fingerprint,
        usage=pb.Usage(input_tokens=int(c.usage.input_tokens), output_tokens=int(c.usage.output_tokens)))

def _messages(ms: Any) -> list:
    return [Message(role=m.role, content=m.content) for m in ms]


def _deadline(ctx: grpc.ServicerContext) -> Optional[float]:
    left = ctx.time_remaining()
    return None if left is None else time.monotonic() + left


def _message(e: BaseException) -> str:
    if isinstance(e, PluginError):
        return e.message
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _wire_error(e: BaseException, ctx: grpc.ServicerContext, op: str) -> pb.Error:
    """A failed call for agora: a PluginError as it says; anything else is
    permanent, unless the call's deadline passed (timed out, retryable) or
    agora cancelled it (retryable)."""
    if isinstance(e, PluginError):
        return _plugin_error(e)
    left = ctx.time_remaining()
    if left is not None and left <= 0:
        return pb.Error(message=_message(e), retryable=True, timed_out=True)
    if not ctx.is_active():
        return pb.Error(message=_message(e), retryable=True)
    _log_.error(f"{op} raised {type(e).__name__}: permanent", extra={"traceback": traceback.format_exc().rstrip()})
    return pb.Error(message=_message(e))


def _plugin_error(e: PluginError) -> pb.Error:
    ms = 0 if e.retry_after is None else max(0, int(e.retry_after * 1000))
    return pb.Error(message=e.message, retryable=e.retryable or e.rate_limited, rate_limited=e.rate_limited,
                    retry_after_ms=ms, status=int(e.status), code=e.code)


def _abort(ctx: grpc.ServicerContext, e: pb.Error) -> None:
    """CountTokens, Embed and the batch calls report failures as gRPC
    statuses."""
    if e.timed_out:
        ctx.abort(grpc.StatusCode.DEADLINE_EXCEEDED, e.message)
    if e.rate_limited:
        ctx.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, e.message)
    if e.retryable:
        ctx.abort(grpc.StatusCode.UNAVAILABLE, e.message)
    ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, e.message)


def _takes_known_ids(fn) -> bool:
    """Whether a provider's find_batch takes the keyword known_ids (the
    batches agora already knows, to skip); one written without it is
    called with key, count and since alone."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "known_ids" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
