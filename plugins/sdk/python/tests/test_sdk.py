"""Unit tests of the SDK's pieces that need no agora: error classification,
Retry-After parsing, version negotiation, the health request's decoding,
the certificate and the log lines. plugins/host's tests run them
(TestPySDKUnit) with the installed wheel; by hand:

    PYTHONPATH=plugins/sdk/python python -m unittest discover plugins/sdk/python/tests
"""
import datetime
import email.utils
import io
import json
import logging
import time
import unittest

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

import agora_plugin as ap
from agora_plugin import _log, _serve, _tls


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
        self.assertEqual(_serve.negotiate("1"), 1)
        self.assertEqual(_serve.negotiate("1,2,3"), 1)
        self.assertEqual(_serve.negotiate(" 2 , 1 "), 1)
        self.assertEqual(_serve.negotiate("2,x"), 1)  # none shared: its own, and agora reports it
        self.assertEqual(_serve.negotiate(""), 1)

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


if __name__ == "__main__":
    unittest.main()
