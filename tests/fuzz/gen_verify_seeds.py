#!/usr/bin/env python3
"""Write signed seed deliveries for fuzz_verify into tests/fuzz/corpus/verify/.

Each seed is 0xff, a scheme selector, "Name: value" header lines, an empty
line and the body, signed the way the provider signs (Python's hmac, and
openssl for Ed25519) with the secrets and routes fuzz_verify.c sets up, at
its fixed now (1700000000). Run it again after changing those routes:
    tests/fuzz/gen_verify_seeds.py
"""
import base64
import hashlib
import hmac
import os
import subprocess
import tempfile

NOW = "1700000000"
KEY = b"secret-two"  # the second secret: rotation is exercised too
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "verify")


def mac(body, digest=hashlib.sha256, key=KEY):
    return hmac.new(key, body, digest)


def ed25519(msg):
    seed = b"fuzz-seed-fuzz-seed-fuzz-seed-32"
    der = bytes.fromhex("302e020100300506032b657004220420") + seed
    with tempfile.TemporaryDirectory() as d:
        k, m = os.path.join(d, "k.der"), os.path.join(d, "m")
        open(k, "wb").write(der)
        open(m, "wb").write(msg)
        return subprocess.run(
            ["openssl", "pkeyutl", "-sign", "-rawin", "-keyform", "DER", "-inkey", k, "-in", m],
            check=True, capture_output=True).stdout


def seed(name, which, headers, body):
    data = bytes([0xff, which]) + "".join(f"{k}: {v}\n" for k, v in headers).encode() + b"\n" + body
    with open(os.path.join(OUT, f"scheme-{name}"), "wb") as f:
        f.write(data)


def main():
    intercom = b'{"type":"notification_event","app_id":"a1","id":"n1","topic":"contact.created"}'
    seed("intercom", 0, [("X-Hub-Signature", "sha1=" + mac(intercom, hashlib.sha1).hexdigest())],
         intercom)

    gh = b'{"action":"opened","repository":{"full_name":"o/r"},"installation":{"id":7}}'
    seed("github", 1, [("X-Hub-Signature-256", "sha256=" + mac(gh).hexdigest()),
                       ("X-GitHub-Event", "issues"), ("X-GitHub-Delivery", "d-1"),
                       ("X-GitHub-Hook-ID", "9")], gh)
    seed("github-sha1", 1, [("X-Hub-Signature", "sha1=" + mac(gh, hashlib.sha1).hexdigest()),
                            ("X-GitHub-Event", "ping")], gh)

    st = b'{"id":"evt_1","type":"invoice.paid","account":"acct_1","created":1700000000}'
    v1 = mac(NOW.encode() + b"." + st).hexdigest()
    seed("stripe", 2, [("Stripe-Signature", f"t={NOW},v1={'0' * 64},v1={v1},v0=ab")], st)

    sh = b'{"id":1,"email":"a@example.com"}'
    seed("shopify", 3, [("X-Shopify-Hmac-SHA256", base64.b64encode(mac(sh).digest()).decode()),
                        ("X-Shopify-Topic", "orders/create"),
                        ("X-Shopify-Shop-Domain", "s.myshopify.com"),
                        ("X-Shopify-Webhook-Id", "w-1")], sh)

    for name, body in [
        ("slack", b'{"type":"event_callback","team_id":"T1","event_id":"Ev1",'
                  b'"event":{"type":"app_mention"}}'),
        ("slack-challenge", b'{"type":"url_verification","challenge":"c\\"h"}'),
    ]:
        sig = "v0=" + mac(b"v0:" + NOW.encode() + b":" + body).hexdigest()
        seed(name, 4, [("X-Slack-Signature", sig), ("X-Slack-Request-Timestamp", NOW),
                       ("X-Slack-Retry-Num", "1")], body)

    sw = b'{"type":"user.created","data":{"id":1}}'
    signed = b"msg_1." + NOW.encode() + b"." + sw
    seed("standard", 5, [("webhook-id", "msg_1"), ("webhook-timestamp", NOW),
                         ("webhook-signature", "v1," + base64.b64encode(mac(signed).digest()).decode()),
                         ("X-Tenant", "acme")], sw)
    seed("standard-v1a", 5, [("webhook-id", "msg_1"), ("webhook-timestamp", NOW),
                             ("webhook-signature",
                              "v1,AAAA v1a," + base64.b64encode(ed25519(signed)).decode())], sw)

    hm = b'{"a/b":"order.paid","s":["acme"]}'
    sig = base64.b64encode(mac(NOW.encode() + b".id-1." + hm, hashlib.sha512).digest()).decode()
    seed("hmac", 6, [("X-Sig", "sha512=" + sig), ("X-Ts", NOW), ("X-Id", "id-1")], hm)


if __name__ == "__main__":
    main()
