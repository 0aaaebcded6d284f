"""The plugin's half of go-plugin's AutoMTLS.

agora puts its own client certificate, PEM, in $PLUGIN_CLIENT_CERT; the
plugin serves TLS with a fresh self-signed certificate, accepts only
clients whose certificate is signed by agora's, and sends its certificate
back in the handshake line. agora (Go's crypto/tls) then trusts exactly
that certificate as the root and checks the name "localhost", so the
certificate needs the DNS name localhost in its subject alternative names
and, as it has an extended key usage, server authentication in it. The
rest follows what go-plugin's own plugins make: an ECDSA key, a CA
certificate (it is its own root) whose key may sign certificates, usable
for client authentication too.
"""

from __future__ import annotations

import datetime
from typing import Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def self_signed(now: datetime.datetime = None) -> Tuple[bytes, bytes, bytes]:
    """A fresh key and certificate: (key PEM, certificate PEM, certificate DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "agora plugin")])
    now = now or datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # A little slack for clocks; valid for as long as any run may last.
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_agreement=True,
                                     key_cert_sign=True, content_commitment=False, data_encipherment=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.DER)
