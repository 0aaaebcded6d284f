"""serve(): the go-plugin side of agora's plugin protocol (docs/plugins.md).

In order: the cookie, SIGINT ignored, the protocol version, a gRPC server
with the provider, health and controller services on a Unix socket with
mutual TLS, the handshake line on stdout (then stdout goes to stderr), the
parent watch, and the wait for agora's Shutdown.
"""

from __future__ import annotations

import base64
import faulthandler
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from concurrent import futures
from typing import Any, Callable, List, Optional

import grpc

# The package's public types are defined before it imports this module.
from . import Completion, Description, Message, PluginError, Request, Sampling, Usage, _log, _tls
from . import provider_pb2 as pb

COOKIE_KEY = "AGORA_PLUGIN"
COOKIE_VALUE = "provider-c1d6f4a2"
CORE_PROTOCOL_VERSION = 1
# The versions of provider.proto this SDK speaks.
PROTOCOL_VERSIONS = (1,)

_log_ = _log.log


def serve(provider: Any, *, max_workers: int = 128) -> None:
    """Serve provider to agora until agora ends the plugin, then exit.

    It never returns: the process exits with status 0 when agora calls
    Shutdown (after calling the provider's close(), if it has one), and
    with status 2 when agora goes away without a word. Run by hand (without
    agora's cookie) it says so and exits 1. max_workers bounds the requests
    served at once (each on its own thread); agora's concurrency limits
    apply before that.
    """
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

    version = negotiate(os.environ.get("PLUGIN_PROTOCOL_VERSIONS", ""))
    stop = threading.Event()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                         options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
    server.add_generic_rpc_handlers(handlers(provider, stop))

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


def negotiate(offered: str) -> int:
    """The protocol version to serve: the highest this SDK shares with
    PLUGIN_PROTOCOL_VERSIONS (comma-separated), else its own highest, which
    agora then reports as a mismatch."""
    theirs = set()
    for v in offered.split(","):
        v = v.strip()
        if not v:
            continue
        try:
            theirs.add(int(v))
        except ValueError:
            _log_.warning("ignoring an invalid version in PLUGIN_PROTOCOL_VERSIONS", extra={"version": v})
    shared = theirs.intersection(PROTOCOL_VERSIONS)
    return max(shared) if shared else max(PROTOCOL_VERSIONS)


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

def handlers(provider: Any, stop: threading.Event) -> List[grpc.GenericRpcHandler]:
    s = _ProviderService(provider)
    table = {
        "Describe": (s.describe, pb.DescribeRequest, pb.DescribeResponse),
        "Complete": (s.complete, pb.CompleteRequest, pb.CompleteResponse),
        "CountTokens": (s.count_tokens, pb.CountTokensRequest, pb.CountTokensResponse),
        "Embed": (s.embed, pb.EmbedRequest, pb.EmbedResponse),
    }
    ident = lambda b: b  # noqa: E731

    def shutdown(_req: bytes, _ctx: grpc.ServicerContext) -> bytes:
        _log_.debug("shutdown requested")
        stop.set()
        return b""  # plugin.Empty

    return [
        grpc.method_handlers_generic_handler("agora.provider.v1.Provider", {
            name: grpc.unary_unary_rpc_method_handler(fn, req.FromString, resp.SerializeToString)
            for name, (fn, req, resp) in table.items()
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

    def __init__(self, provider: Any):
        self.p = provider

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
        for m in d.models:
            pm = out.models.add(id=m.id)
            if m.input_price or m.output_price:
                pm.price.input_per_mtok, pm.price.output_per_mtok = float(m.input_price), float(m.output_price)
            if m.rpm or m.tpm or m.concurrency:
                pm.limits.requests_per_minute, pm.limits.tokens_per_minute, pm.limits.concurrency = m.rpm, m.tpm, m.concurrency
        return out

    def complete(self, r: pb.CompleteRequest, ctx: grpc.ServicerContext) -> pb.CompleteResponse:
        try:
            sp = r.sampling
            sampling = Sampling(
                temperature=sp.temperature if sp.HasField("temperature") else None,
                top_p=sp.top_p if sp.HasField("top_p") else None,
                max_tokens=sp.max_tokens, stop=list(sp.stop),
                seed=sp.seed if sp.HasField("seed") else None,
                extra={k: json.loads(v) for k, v in sp.extra_json.items()})
            req = Request(model=r.model, messages=_messages(r.messages), sampling=sampling, deadline=_deadline(ctx))
            c = self.p.complete(req)
            if not isinstance(c, Completion):
                raise TypeError(f"complete returned {type(c).__name__}, not an agora_plugin.Completion")
        except Exception as e:  # noqa: BLE001
            return pb.CompleteResponse(error=_wire_error(e, ctx, "complete"))
        return pb.CompleteResponse(completion=pb.Completion(
            text=c.text, finish_reason=c.finish_reason, model=c.model, id=c.id, system_fingerprint=c.system_fingerprint,
            usage=pb.Usage(input_tokens=int(c.usage.input_tokens), output_tokens=int(c.usage.output_tokens))))

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
        ms = 0 if e.retry_after is None else max(0, int(e.retry_after * 1000))
        return pb.Error(message=e.message, retryable=e.retryable, rate_limited=e.rate_limited, retry_after_ms=ms,
                        status=int(e.status), code=e.code)
    left = ctx.time_remaining()
    if left is not None and left <= 0:
        return pb.Error(message=_message(e), retryable=True, timed_out=True)
    if not ctx.is_active():
        return pb.Error(message=_message(e), retryable=True)
    _log_.error(f"{op} raised {type(e).__name__}: permanent", extra={"traceback": traceback.format_exc().rstrip()})
    return pb.Error(message=_message(e))


def _abort(ctx: grpc.ServicerContext, e: pb.Error) -> None:
    """CountTokens and Embed report failures as gRPC statuses."""
    if e.timed_out:
        ctx.abort(grpc.StatusCode.DEADLINE_EXCEEDED, e.message)
    if e.rate_limited:
        ctx.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, e.message)
    if e.retryable:
        ctx.abort(grpc.StatusCode.UNAVAILABLE, e.message)
    ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, e.message)
