#!/usr/bin/env python3
"""verify-receipt.py RECEIPT.json [--extract DIR]

Re-checks a selo-receipt/v1 with the Python standard library alone: each
event's inclusion proof against the checkpoint's root (RFC 9162), that the
entries are the notice's, the message digest against the content_sealed
entry, and each disclosed value against its commitment. The checkpoint's
signature and timestamp are checked with openssl (docs/receipt.md);
--extract DIR writes the files those commands need. Exit 0 when every
check passes, 1 when one fails, 2 when the file cannot be read."""
import base64
import hashlib
import json
import os
import sys


def sha256(*parts):
    return hashlib.sha256(b"".join(parts)).digest()


def root_from_proof(index, size, leaf, proof):
    """RFC 9162 section 2.1.3.2: the root the proof leads to, or None."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = sha256(b"\x01", p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha256(b"\x01", r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def parse(entry):
    """The entry as a JSON object, or {} when it is not one."""
    try:
        e = json.loads(entry)
    except ValueError:
        return {}
    return e if isinstance(e, dict) else {}


def check(receipt):
    """Yields (ok, name, detail) for each check."""
    note = receipt["log"]["checkpoint"]
    text = note[: note.rindex("\n\n") + 1]
    origin, size, root = text.split("\n")[:3]
    size, root = int(size), base64.b64decode(root)
    entries = [parse(ev["entry"]) for ev in receipt["events"]]
    for ev, e in zip(receipt["events"], entries):
        leaf = sha256(b"\x00", ev["entry"].encode("utf-8"))
        proof = [base64.b64decode(p) for p in ev["proof"]]
        ok = root_from_proof(ev["index"], size, leaf, proof) == root
        what = (ev["index"], e.get("type"), e.get("time"), origin, size)
        yield ok, "inclusion", "event #%d (%s, %s) is in %s's tree of %d" % what
    ok = all(e.get("v") == 1 and e.get("notice") == receipt["notice"] for e in entries)
    yield ok, "entries_notice", "every entry is an event of notice " + receipt["notice"]
    msg = receipt["message"]
    sealed = [e.get("sha256") for e in entries if e.get("type") == "content_sealed"]
    ok = msg["sha256"] in sealed
    if "eml_base64" in msg:
        eml = base64.b64decode(msg["eml_base64"], validate=True)
        ok = ok and hashlib.sha256(eml).hexdigest() == msg["sha256"]
    yield ok, "message_digest", "message " + msg["sha256"] + " is the one sealed"
    salt = bytes.fromhex(receipt["disclosure"]["salt"])
    for commitment, value in receipt["disclosure"]["values"].items():
        mine = "sha256:" + hashlib.sha256(salt + value.encode("utf-8")).hexdigest()
        ok = mine == commitment and any(commitment in ev["entry"] for ev in receipt["events"])
        shown = value if len(value) <= 60 else value[:57] + "..."
        yield ok, "disclosures", "%s... is %r" % (commitment[:20], shown)


def extract(receipt, out):
    """Writes the files the openssl commands of docs/receipt.md read."""
    os.makedirs(out, exist_ok=True)
    log = receipt["log"]
    note = log["checkpoint"].encode("utf-8")
    cut = note.rindex(b"\n\n") + 1
    name, keyid, key = log["verifier_key"].split("+", 2)
    key = base64.b64decode(key)
    assert key[0] == 1 and len(key) == 33, "not an Ed25519 verifier key"
    assert sha256(name.encode(), b"\n", key)[:4].hex() == keyid, "key ID mismatch"
    for line in note[cut + 1 :].decode("utf-8").splitlines():
        dash, signer, sig = line.split(" ")
        if signer == name and base64.b64decode(sig)[:4].hex() == keyid:
            signature = base64.b64decode(sig)[4:]
    spki = bytes.fromhex("302a300506032b6570032100") + key[1:]
    pem = base64.b64encode(spki).decode()
    files = {
        "checkpoint.txt": note,
        "checkpoint-text.txt": note[:cut],
        "checkpoint.sig": signature,
        "log-key.pem": ("-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n" % pem).encode(),
        "tok.der": base64.b64decode(log["timestamp"], validate=True),
        "tsa-certs.pem": "".join(log["tsa_certs"]).encode(),
        "tsa-ca.pem": log["tsa_certs"][-1].encode(),
    }
    for fname, data in files.items():
        with open(os.path.join(out, fname), "wb") as f:
            f.write(data)
    print("extracted to %s; timestamp digest %s" % (out, hashlib.sha256(note).hexdigest()))


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--extract"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            receipt = json.load(f)
        results = list(check(receipt))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        print("cannot read the receipt: %r" % e, file=sys.stderr)
        return 2
    for ok, name, detail in results:
        print("%s %s: %s" % ("ok  " if ok else "FAIL", name, detail))
    if len(argv) == 4:
        extract(receipt, argv[3])
    return 0 if all(ok for ok, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
