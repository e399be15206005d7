"""The TLS policy of the HTTPS listener, seen by `openssl s_client` (issue 10).

TLS 1.2 only with ECDHE key exchange and AEAD ciphers: suites with RSA key
exchange (AES128-SHA, AES128-GCM-SHA256) or CBC (ECDHE-*-AES128-SHA) and
TLS 1.1 are refused with an alert from the server; a good client connects
with TLS 1.2 ECDHE-GCM and with TLS 1.3; no TLS 1.2 session ticket is issued.

Run: python3 -m unittest -v tests/integration/test_tls_policy.py
"""

import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import BridgeTestCase  # noqa: E402

HANDSHAKE_FAILURE = "alert number 40"
PROTOCOL_VERSION = "alert number 70"


def s_client(port, *args):
    """Run one s_client handshake -> its combined output."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise AssertionError("the openssl command is needed for this test")
    p = subprocess.run([openssl, "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", "localhost"] + list(args),
                       input=b"", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=hbtest.scaled(30))
    return p.stdout.decode("utf-8", "replace")


class TlsPolicy(BridgeTestCase):

    def assert_refused(self, port, alert, *args):
        out = s_client(port, *args)
        self.assertIn(alert, out, "%s: not refused by the server:\n%s" % (" ".join(args), out))
        self.assertIn("Cipher is (NONE)", out, out)

    def assert_connects(self, port, protocol, cipher, *args):
        out = s_client(port, *args)
        self.assertIn("New, %s, Cipher is %s" % (protocol, cipher), out,
                      "%s: no %s handshake with %s:\n%s" % (" ".join(args), protocol, cipher, out))
        return out

    def make_pair(self, name, cn="localhost"):
        tmp = self.tmp_dir()
        crt, key = os.path.join(tmp, name + ".crt"), os.path.join(tmp, name + ".key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", crt, "-days", "2", "-subj", "/CN=" + cn],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=hbtest.scaled(60))
        return crt, key

    def rsa_bridge(self):
        """A bridge with an RSA certificate: only then would RSA key
        exchange suites be possible at all."""
        crt, key = self.make_pair("rsa")
        return self.start_bridge(**{"tls.cert": crt, "tls.key": key})

    def tmp_dir(self):
        tmp = tempfile.mkdtemp(prefix="hbtest-tlspol-")
        self.addCleanup(shutil.rmtree, tmp, True)
        return tmp

    def test_rsa_certificate_refuses_rsa_kx_and_cbc(self):
        b = self.rsa_bridge()
        for cipher in ("AES128-SHA", "AES128-GCM-SHA256", "AES256-GCM-SHA384",
                       "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384"):
            with self.subTest(cipher=cipher):
                self.assert_refused(b.port, HANDSHAKE_FAILURE, "-tls1_2", "-cipher", cipher)
        out = self.assert_connects(b.port, "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256",
                                   "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertNotIn("session ticket lifetime hint", out,
                         "a TLS 1.2 session ticket was issued:\n%s" % out)
        self.assert_connects(b.port, "TLSv1.3", "TLS_AES_256_GCM_SHA384", "-tls1_3")

    def test_self_signed_ecdsa_refuses_cbc_and_tls11(self):
        b = self.start_bridge()
        self.assert_refused(b.port, HANDSHAKE_FAILURE, "-tls1_2", "-cipher",
                            "ECDHE-ECDSA-AES128-SHA")
        # the client must be willing to speak TLS 1.1 for the test to mean
        # anything: security level 0 lets OpenSSL 3 offer it
        self.assert_refused(b.port, PROTOCOL_VERSION, "-tls1_1", "-cipher", "ALL:@SECLEVEL=0")
        out = self.assert_connects(b.port, "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256",
                                   "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
        self.assertNotIn("session ticket lifetime hint", out, out)
        self.assert_connects(b.port, "TLSv1.3", "TLS_AES_128_GCM_SHA256", "-tls1_3",
                             "-ciphersuites", "TLS_AES_128_GCM_SHA256")

    def test_operator_cipher_keys_apply(self):
        b = self.start_bridge(**{"tls.ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384",
                                 "tls.ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"})
        self.assert_refused(b.port, HANDSHAKE_FAILURE, "-tls1_2", "-cipher",
                            "ECDHE-ECDSA-AES128-GCM-SHA256")
        self.assert_connects(b.port, "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384", "-tls1_2")
        self.assert_connects(b.port, "TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256", "-tls1_3")

    def test_renewed_certificate_served_without_sighup(self):
        crt, key = self.make_pair("first", "first.example")
        b = self.start_bridge(**{"tls.cert": crt, "tls.key": key})

        def served():
            pem = ssl.get_server_certificate(("127.0.0.1", b.port))
            return ssl.PEM_cert_to_DER_cert(pem)
        with open(crt) as f:
            self.assertEqual(served(), ssl.PEM_cert_to_DER_cert(f.read()))
        # a renewal tool renames the new files into place (key first)
        crt2, key2 = self.make_pair("second", "second.example")
        os.replace(key2, key)
        os.replace(crt2, crt)
        with open(crt) as f:
            want = ssl.PEM_cert_to_DER_cert(f.read())
        deadline = time.monotonic() + hbtest.scaled(30)
        while served() != want and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(served(), want, "the renewed certificate is not served within 30 s "
                         "without SIGHUP\n%s" % b.log_tail())
        self.assertTrue(b.wait_log(lambda t: "changed on disk: serving the new pair" in t,
                                   timeout=10), b.log_tail())

    def test_self_signed_key_is_0600(self):
        b = self.start_bridge()
        key = os.path.join(b.config["data.dir"], "tls", "self-signed.key")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600, "mode of %s" % key)


if __name__ == "__main__":
    hbtest.main()
