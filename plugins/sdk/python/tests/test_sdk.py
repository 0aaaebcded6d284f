"""Unit tests of the SDK's pieces that need no agora: error classification,
Retry-After parsing, version negotiation, the health request's decoding,
the certificate, the log lines, and the batch calls' checks, statuses and
streaming (on the service's methods, with a stand-in gRPC context). plugins/host's tests run them
(TestPySDKUnit) with the installed wheel; by hand:

    PYTHONPATH=plugins/sdk/python python -m unittest discover plugins/sdk/python/tests
"""
import datetime
import email.utils
import io
import json
import logging
import threading
import time
import unittest
from unittest import mock

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

import agora_plugin as ap
from agora_plugin import _log, _serve, _tls
from agora_plugin import provider_pb2 as pb


class HTTPErrors(unittest.TestCase):
    def test_classes(self):
        for status, cls in [(429, ap.RateLimited), (529, ap.RateLimited), (408, ap.Retryable), (409, ap.Retryable),
                            (425, ap.Retryable), (500, ap.Retryable), (503, ap.Retryable), (400, ap.Fatal),
                            (401, ap.Fatal), (404, ap.Fatal), (422, ap.Fatal)]:
            e = ap.http_error(status)
            self.assertIs(type(e), cls, status)
            self.assertEqual(e.status, status)
            self.assertEqual(e.retryable, cls is not ap.Fatal, status)
            self.assertEqual(e.rate_limited, cls is ap.RateLimited, status)

    def test_message(self):
        self.assertEqual(ap.http_error(400).message, "400 Bad Request")
        self.assertEqual(ap.http_error(400, message="no such model", code="invalid_request_error").message,
                         "400 invalid_request_error: no such model")
        self.assertEqual(ap.http_error(599).message, "599 HTTP error")

    def test_retry_after(self):
        self.assertEqual(ap.http_error(429, {"retry-after-ms": "1500", "Retry-After": "9"}).retry_after, 1.5)
        self.assertEqual(ap.http_error(429, {"Retry-After": "2"}).retry_after, 2.0)
        self.assertIsNone(ap.http_error(429, {"Retry-After": "soon"}).retry_after)
        self.assertIsNone(ap.http_error(429, {"Retry-After": "-1"}).retry_after)
        self.assertIsNone(ap.http_error(429).retry_after)
        when = email.utils.formatdate(time.time() + 30, usegmt=True)
        self.assertAlmostEqual(ap.http_error(429, {"retry-after": when}).retry_after, 30, delta=2)
        past = email.utils.formatdate(time.time() - 30, usegmt=True)
        self.assertEqual(ap.http_error(429, {"Retry-After": past}).retry_after, 0.0)

    def test_typed(self):
        self.assertTrue(ap.RateLimited("x").retryable)
        self.assertFalse(ap.Fatal("x", retryable=True).retryable)
        self.assertTrue(ap.PluginError("x", rate_limited=True).retryable)


class Protocol(unittest.TestCase):
    def test_negotiate(self):
        self.assertEqual(_serve.negotiate("1,2"), 2)
        self.assertEqual(_serve.negotiate(" 2 , 1 "), 2)
        self.assertEqual(_serve.negotiate("1"), 1)  # an older agora: no batches
        self.assertEqual(_serve.negotiate("1,2,3"), 2)
        self.assertEqual(_serve.negotiate("2,x"), 2)
        self.assertEqual(_serve.negotiate("3"), 2)  # none shared: its own newest, and agora reports it
        self.assertEqual(_serve.negotiate(""), 2)
        # A plugin that offers only version 1.
        self.assertEqual(_serve.negotiate("1,2", (1,)), 1)
        self.assertEqual(_serve.negotiate("2", (1,)), 1)

    def test_batch_calls_only_in_version_2(self):
        stop = threading.Event()
        for version, want in [(1, False), (2, True)]:
            provider = _serve.handlers(MemBatches(), stop, version)[0]
            for name in ("SubmitBatch", "FindBatch", "GetBatch", "CancelBatch", "BatchResults"):
                h = provider.service(_Call(f"/agora.provider.v1.Provider/{name}"))
                self.assertEqual(h is not None, want, (version, name))
            self.assertIsNotNone(provider.service(_Call("/agora.provider.v1.Provider/Complete")))

    def test_serve_refuses_unknown_versions(self):
        with self.assertRaisesRegex(ValueError, r"this SDK speaks \[1, 2\]"):
            ap.serve(MemBatches(), protocol_versions=(3,))

    def test_health_request(self):
        self.assertEqual(_serve._string_field1(b""), "")
        self.assertEqual(_serve._string_field1(b"\n\x06plugin"), "plugin")
        # an unknown varint field first, then the service
        self.assertEqual(_serve._string_field1(b"\x10\x96\x01\n\x03abc"), "abc")

    def test_request_time_left(self):
        self.assertIsNone(ap.Request("m", []).time_left())
        self.assertEqual(ap.Request("m", []).time_left(5), 5)
        self.assertEqual(ap.Request("m", [], deadline=time.monotonic() - 1).time_left(), 0.0)
        self.assertAlmostEqual(ap.Request("m", [], deadline=time.monotonic() + 10).time_left(), 10, delta=1)


class Certificate(unittest.TestCase):
    def test_what_agora_checks(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        _, pem, der = _tls.self_signed(now)
        cert = x509.load_der_x509_certificate(der)
        self.assertEqual(cert, x509.load_pem_x509_certificate(pem))
        self.assertEqual(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName),
                         ["localhost"])
        self.assertIn(ExtendedKeyUsageOID.SERVER_AUTH, cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        self.assertTrue(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        self.assertIsInstance(cert.public_key(), ec.EllipticCurvePublicKey)
        self.assertEqual(cert.public_key().curve.name, "secp256r1")
        self.assertEqual(cert.issuer, cert.subject)
        self.assertLessEqual(cert.not_valid_before_utc, now)
        self.assertGreater(cert.not_valid_after_utc, now + datetime.timedelta(days=365))


class Logging(unittest.TestCase):
    def test_hclog_line(self):
        buf = io.StringIO()
        logger = logging.getLogger("agora_plugin.test")
        logger.propagate = False
        logger.addHandler(_log.HclogHandler(buf))
        logger.setLevel(logging.DEBUG)
        logger.warning("slow %s", "down", extra={"model": "m", "n": 2})
        line = json.loads(buf.getvalue())
        self.assertEqual(line["@level"], "warn")
        self.assertEqual(line["@message"], "slow down")
        self.assertEqual(line["@module"], "agora_plugin.test")
        self.assertEqual((line["model"], line["n"]), ("m", 2))
        self.assertIn("@timestamp", line)


# The batch calls, on the service's methods with a stand-in gRPC context.

class Aborted(Exception):
    def __init__(self, code, details):
        super().__init__(f"{code}: {details}")
        self.code, self.details = code, details


class Ctx:
    """A grpc.ServicerContext as the service uses it."""

    def __init__(self, left=None):
        self.left = left

    def abort(self, code, details):
        raise Aborted(code, details)

    def time_remaining(self):
        return self.left

    def is_active(self):
        return True


class _Call:
    def __init__(self, method):
        self.method = method
        self.invocation_metadata = ()


class MemBatches(ap.Provider):
    """A provider whose batches answer at once, and fail as asked."""

    def __init__(self):
        self.submitted = []
        self.fail = None
        self.results = []

    def describe(self):
        return ap.Description(name="mem", models=[ap.Model("m", 2, 4, batch_discount=0.5), ap.Model("free")])

    def complete(self, r):
        return ap.Completion(text="sync")

    def batch_limits(self):
        return ap.BatchLimits(max_requests=100, max_bytes=1 << 20)

    def submit_batch(self, sub):
        if self.fail:
            raise self.fail
        self.submitted.append(sub)
        return ap.BatchStatus(id="b1", status="in_progress", total=len(sub.items))

    def find_batch(self, key, count, since):
        self.since = since
        if key == "made":
            return ap.FindResult(ap.Found.FOUND, ap.BatchStatus(id="b1", status="ended", ended=True, total=count))
        if key == "later":
            return ap.FindResult(ap.Found.UNKNOWN, why="the list lags")
        if key == "broken":
            return ap.FindResult(ap.Found.FOUND)
        return ap.FindResult(ap.Found.ABSENT)

    def get_batch(self, id):
        if id != "b1":
            raise ap.Fatal(f"no batch {id}", status=404)
        return ap.BatchStatus(id="b1", status="in_progress", total=3, completed=1)

    def cancel_batch(self, id):
        if self.fail:
            raise self.fail
        return ap.BatchStatus(id=id, status="canceling")

    def batch_results(self, id):
        yield from self.results


def header(key="k1", count=2, model="m"):
    return pb.SubmitBatchRequest(header=pb.BatchHeader(key=key, model=model, count=count, window="24h"))


def item(cid, text="hi", extra=None):
    req = pb.CompleteRequest(model="m", messages=[pb.Message(role="user", content=text)])
    req.sampling.max_tokens = 10
    req.sampling.temperature = 0.5
    for k, v in (extra or {}).items():
        req.sampling.extra_json[k] = v
    return pb.SubmitBatchRequest(item=pb.BatchItem(custom_id=cid, request=req))


class Batches(unittest.TestCase):
    def setUp(self):
        self.p = MemBatches()
        self.s = _serve._ProviderService(self.p, 2)
        # The SDK logs a provider's unexpected exceptions: keep them off the test's output.
        patcher = mock.patch.object(_serve._log_, "error")
        patcher.start()
        self.addCleanup(patcher.stop)

    def aborts(self, code, fn, *args):
        with self.assertRaises(Aborted) as cm:
            r = fn(*args)
            if hasattr(r, "__next__"):
                list(r)
        self.assertEqual(cm.exception.code, code, cm.exception.details)
        return cm.exception.details

    def test_describe(self):
        d = self.s.describe(pb.DescribeRequest(), Ctx())
        self.assertTrue(d.capabilities.batches)
        self.assertEqual((d.capabilities.batch_limits.max_requests, d.capabilities.batch_limits.max_bytes), (100, 1 << 20))
        self.assertEqual(d.models[0].price.batch_discount, 0.5)
        self.assertFalse(d.models[1].HasField("price"))
        # Version 1 (an older agora): no batches, whatever the provider defines.
        d = _serve._ProviderService(self.p, 1).describe(pb.DescribeRequest(), Ctx())
        self.assertFalse(d.capabilities.batches)
        self.assertFalse(d.capabilities.HasField("batch_limits"))

    def test_describe_without_batches(self):
        class Sync(ap.Provider):
            def complete(self, r):
                return ap.Completion(text="x")
        s = _serve._ProviderService(Sync(), 2)
        self.assertFalse(s.describe(pb.DescribeRequest(), Ctx()).capabilities.batches)
        self.assertEqual(self.aborts(grpc.StatusCode.UNIMPLEMENTED, s.submit_batch, iter([header(), item("a")]), Ctx()),
                         "this provider takes no batches")
        for fn, req in [(s.find_batch, pb.FindBatchRequest(key="k")), (s.get_batch, pb.BatchRef(id="b")),
                        (s.cancel_batch, pb.BatchRef(id="b")), (s.batch_results, pb.BatchRef(id="b"))]:
            self.aborts(grpc.StatusCode.UNIMPLEMENTED, fn, req, Ctx())

    def test_describe_some_batch_methods(self):
        class Half(ap.Provider):
            def submit_batch(self, sub):
                return ap.BatchStatus(id="x")

            def get_batch(self, id):
                return ap.BatchStatus(id="x")
        s = _serve._ProviderService(Half(), 2)
        self.assertEqual(self.aborts(grpc.StatusCode.INTERNAL, s.describe, pb.DescribeRequest(), Ctx()),
                         "Half defines submit_batch, get_batch but not find_batch, cancel_batch, batch_results: "
                         "a provider that takes batches defines all of submit_batch, find_batch, get_batch, "
                         "cancel_batch, batch_results")

    def test_submit(self):
        st = self.s.submit_batch(iter([header(), item("c-0", "one", {"top_k": "40"}), item("c-1", "two")]), Ctx())
        self.assertEqual((st.id, st.status, st.total, st.ended), ("b1", "in_progress", 2, False))
        sub = self.p.submitted[0]
        self.assertEqual((sub.key, sub.model, sub.window), ("k1", "m", "24h"))
        self.assertEqual([i.custom_id for i in sub.items], ["c-0", "c-1"])
        r = sub.items[0].request
        self.assertEqual((r.model, r.messages, r.sampling.max_tokens, r.sampling.temperature, r.sampling.extra, r.deadline),
                         ("m", [ap.Message("user", "one")], 10, 0.5, {"top_k": 40}, None))

    def test_submit_invalid(self):
        bad = {
            "a batch starts with its header": [item("a")],
            "a batch starts with its header ": [],
            "batch key '' is not 1 to 40 characters of [A-Za-z0-9_-]": [header(key=""), item("a")],
            "batch key 'k/1' is not 1 to 40 characters of [A-Za-z0-9_-]": [header(key="k/1"), item("a")],
            f"batch key '{'k' * 41}' is not 1 to 40 characters of [A-Za-z0-9_-]": [header(key="k" * 41), item("a")],
            "custom id 'A' is not 1 to 20 characters of [a-z0-9-] unique in the batch": [header(), item("A")],
            "custom id '' is not 1 to 20 characters of [a-z0-9-] unique in the batch": [header(), item("")],
            f"custom id '{'a' * 21}' is not 1 to 20 characters of [a-z0-9-] unique in the batch": [header(), item("a" * 21)],
            "custom id 'a' is not 1 to 20 characters of [a-z0-9-] unique in the batch": [header(), item("a"), item("a")],
            "a batch has one header, then items": [header(), item("a"), header()],
            "the header announces 2 requests; 1 came": [header(), item("a")],
            "the header announces 1 requests; 2 came": [header(count=1), item("a"), item("b")],
            "the header announces 0 requests; 0 came": [header(count=0)],
            "custom id a: Expecting value: line 1 column 1 (char 0)": [header(count=1), item("a", extra={"x": "nope"})],
        }
        for want, msgs in bad.items():
            got = self.aborts(grpc.StatusCode.INVALID_ARGUMENT, self.s.submit_batch, iter(msgs), Ctx())
            self.assertEqual(got, want.strip())
        self.assertEqual(self.p.submitted, [], "an invalid batch reached the provider")

    def test_submit_failures(self):
        for err, code, want in [
            (ap.Fatal("too big", status=413), grpc.StatusCode.FAILED_PRECONDITION, "too big (HTTP 413)"),
            (ap.http_error(400, message="bad"), grpc.StatusCode.FAILED_PRECONDITION, "400 Bad Request: bad (HTTP 400)"),
            (KeyError("x"), grpc.StatusCode.FAILED_PRECONDITION, "KeyError: 'x'"),
            (ap.Retryable("reset"), grpc.StatusCode.UNAVAILABLE, "reset"),
            (ap.http_error(529), grpc.StatusCode.RESOURCE_EXHAUSTED, "529 Overloaded"),
        ]:
            self.p.fail = err
            got = self.aborts(code, self.s.submit_batch, iter([header(count=1), item("a")]), Ctx())
            self.assertEqual(got, want)
        self.p.fail = ConnectionResetError()
        self.aborts(grpc.StatusCode.DEADLINE_EXCEEDED, self.s.submit_batch, iter([header(count=1), item("a")]), Ctx(left=0))

    def test_submit_returns_no_status(self):
        self.p.submit_batch = lambda sub: {"id": "b1"}
        # Not a refusal: the batch may have been made, agora looks it up.
        self.assertEqual(self.aborts(grpc.StatusCode.INTERNAL, self.s.submit_batch, iter([header(count=1), item("a")]), Ctx()),
                         "submit_batch returned dict, not an agora_plugin.BatchStatus")
        self.p.submit_batch = lambda sub: ap.BatchStatus(id="")
        self.aborts(grpc.StatusCode.INTERNAL, self.s.submit_batch, iter([header(count=1), item("a")]), Ctx())

    def test_find(self):
        r = self.s.find_batch(pb.FindBatchRequest(key="made", count=3, since_unix_ms=1_700_000_000_123), Ctx())
        self.assertEqual((r.found, r.batch.id, r.batch.ended, r.batch.total), (pb.FindBatchResponse.FOUND, "b1", True, 3))
        self.assertEqual(self.p.since, datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=datetime.timezone.utc))
        # Go's zero time less an hour, and its far end.
        self.s.find_batch(pb.FindBatchRequest(key="made", since_unix_ms=-62135600400000), Ctx())
        self.assertEqual(self.p.since, datetime.datetime.min.replace(tzinfo=datetime.timezone.utc))
        self.s.find_batch(pb.FindBatchRequest(key="made", since_unix_ms=2**63 - 1), Ctx())
        self.assertEqual(self.p.since, datetime.datetime.max.replace(tzinfo=datetime.timezone.utc))
        r = self.s.find_batch(pb.FindBatchRequest(key="later"), Ctx())
        self.assertEqual((r.found, r.why, r.HasField("batch")), (pb.FindBatchResponse.UNKNOWN, "the list lags", False))
        r = self.s.find_batch(pb.FindBatchRequest(key="other"), Ctx())
        self.assertEqual((r.found, r.HasField("batch")), (pb.FindBatchResponse.ABSENT, False))
        self.assertEqual(self.aborts(grpc.StatusCode.FAILED_PRECONDITION, self.s.find_batch, pb.FindBatchRequest(key="broken"), Ctx()),
                         "TypeError: find_batch's FindResult.batch returned NoneType, not an agora_plugin.BatchStatus")

    def test_find_known_ids(self):
        # find_batch declared with known_ids gets agora's known batches;
        # one without it (test_find's) is called with three arguments.
        seen = []

        def find(key, count, since, known_ids=frozenset()):
            seen.append(known_ids)
            return ap.FindResult(ap.Found.ABSENT)
        self.p.find_batch = find
        self.s.find_batch(pb.FindBatchRequest(key="k", count=1, known_ids=["b1", "b2"]), Ctx())
        self.s.find_batch(pb.FindBatchRequest(key="k", count=1), Ctx())
        self.assertEqual(seen, [frozenset({"b1", "b2"}), frozenset()])

    def test_get_cancel(self):
        st = self.s.get_batch(pb.BatchRef(id="b1"), Ctx())
        self.assertEqual((st.id, st.status, st.total, st.completed), ("b1", "in_progress", 3, 1))
        self.assertEqual(self.aborts(grpc.StatusCode.FAILED_PRECONDITION, self.s.get_batch, pb.BatchRef(id="b2"), Ctx()),
                         "no batch b2")
        self.assertEqual(self.s.cancel_batch(pb.BatchRef(id="b1"), Ctx()).status, "canceling")
        self.p.fail = ap.RateLimited("slow down")
        self.aborts(grpc.StatusCode.RESOURCE_EXHAUSTED, self.s.cancel_batch, pb.BatchRef(id="b1"), Ctx())
        self.p.fail = ap.Retryable("reset")
        self.aborts(grpc.StatusCode.UNAVAILABLE, self.s.cancel_batch, pb.BatchRef(id="b1"), Ctx())

    def test_results(self):
        self.p.results = [
            ap.BatchResult("a", completion=ap.Completion("A", model="m-1", id="r1", usage=ap.Usage(3, 1))),
            ap.BatchResult("b", error=ap.Retryable("expired", code="expired")),
            ap.BatchResult("c", error=ap.RateLimited("overloaded", retry_after=2, status=529)),
            ap.BatchResult("d", error=ap.Fatal("invalid request", status=400, code="invalid_request_error")),
            ap.BatchResult("e", error=ValueError("odd")),
        ]
        out = list(self.s.batch_results(pb.BatchRef(id="b1"), Ctx()))
        self.assertEqual([r.custom_id for r in out], ["a", "b", "c", "d", "e"])
        c = out[0].completion
        self.assertEqual((c.text, c.model, c.id, c.usage.input_tokens, c.usage.output_tokens, c.finish_reason),
                         ("A", "m-1", "r1", 3, 1, "stop"))
        self.assertEqual([(r.error.message, r.error.retryable, r.error.rate_limited) for r in out[1:]],
                         [("expired", True, False), ("overloaded", True, True), ("invalid request", False, False),
                          ("ValueError: odd", False, False)])
        self.assertEqual((out[2].error.retry_after_ms, out[2].error.status), (2000, 529))
        self.assertEqual(out[3].error.code, "invalid_request_error")

    def test_results_streamed(self):
        made = []

        def endless(id):
            n = 0
            while n < 1000:
                made.append(n)
                yield ap.BatchResult(f"c-{n}", completion=ap.Completion(str(n)))
                n += 1
        self.p.batch_results = endless
        it = self.s.batch_results(pb.BatchRef(id="b1"), Ctx())
        self.assertEqual([next(it).custom_id for _ in range(3)], ["c-0", "c-1", "c-2"])
        self.assertEqual(made, [0, 1, 2], "the results were read ahead of the stream")
        it.close()

    def test_results_fail_midway(self):
        def broken(id):
            yield ap.BatchResult("a", completion=ap.Completion("A"))
            raise ap.Retryable("connection reset")
        self.p.batch_results = broken
        it = self.s.batch_results(pb.BatchRef(id="b1"), Ctx())
        self.assertEqual(next(it).custom_id, "a")
        with self.assertRaises(Aborted) as cm:
            next(it)
        self.assertEqual((cm.exception.code, cm.exception.details), (grpc.StatusCode.UNAVAILABLE, "connection reset"))
        del self.p.batch_results
        for bad, want in [
            (ap.BatchResult("a"), "TypeError: batch_results yielded a result for 'a' with neither a completion nor an error"),
            (ap.BatchResult("a", ap.Completion("x"), ap.Fatal("y")), "TypeError: batch_results yielded a result for 'a' with both a completion and an error"),
            (ap.Completion("x"), "TypeError: batch_results yielded Completion, not an agora_plugin.BatchResult"),
            (ap.BatchResult("a", error="no"), "TypeError: batch_results yielded an error of type str, not an agora_plugin.PluginError"),
        ]:
            self.p.results = [bad]
            self.assertEqual(self.aborts(grpc.StatusCode.FAILED_PRECONDITION, self.s.batch_results, pb.BatchRef(id="b1"), Ctx()),
                             want)


if __name__ == "__main__":
    unittest.main()
