#!/usr/bin/python3
"""smime-timestamp.py MESSAGE.eml OUTDIR: takes the RFC 3161 signature
timestamp out of a Selo message's S/MIME signature, so that it can be checked
with openssl alone (docs/receipt.md, "The e-mail's own timestamp").

Writes OUTDIR/token.der (the TimeStampToken, from the SignerInfo's unsigned
attribute id-aa-timeStampToken, 1.2.840.113549.1.9.16.2.14) and prints the
SHA-256 of the SignerInfo's signature value: the digest the token covers.
Then: openssl ts -verify -token_in -in OUTDIR/token.der -digest <printed hex>
-CAfile <TSA CA>. Standard library only; exit 1 when there is no token."""
import base64, email, email.policy, hashlib, os, sys

TST_OID = bytes.fromhex('060b2a864886f70d010910020e')  # DER of 1.2.840.113549.1.9.16.2.14


def tlv(b, i):
    """(tag, start of value, end of value) of the DER element at i."""
    tag = b[i]
    n = b[i + 1]
    j = i + 2
    if n & 0x80:
        k = n & 0x7f
        n = int.from_bytes(b[j:j + k], 'big')
        j += k
    return tag, j, j + n


def children(b, start, end):
    out, i = [], start
    while i < end:
        t, s, e = tlv(b, i)
        out.append((t, s, e, i))
        i = e
    return out


def main():
    msg = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
    p7s = next(p for p in msg.walk() if p.get_content_type() == 'application/pkcs7-signature')
    der = p7s.get_payload(decode=True)
    _, s, e = tlv(der, 0)                           # ContentInfo
    ci = children(der, s, e)
    _, s, e, _ = ci[1]                              # [0] EXPLICIT content
    _, s, e = tlv(der, s)                           # SignedData
    signer_infos = children(der, s, e)[-1]          # the last field: signerInfos SET
    _, s, e, _ = signer_infos
    _, s, e, _ = children(der, s, e)[0]             # the first SignerInfo
    fields = children(der, s, e)
    sig = next(f for f in fields if f[0] == 0x04)   # signature OCTET STRING
    unsigned = next((f for f in fields if f[0] == 0xa1), None)
    if not unsigned:
        sys.exit('no unsigned attributes: the signature carries no timestamp')
    for t, s2, e2, _ in children(der, unsigned[1], unsigned[2]):
        attr = children(der, s2, e2)
        if der[attr[0][3]:attr[0][2]] == TST_OID:
            _, vs, ve, _ = attr[1]                   # SET OF values
            t3, ts, te, start = children(der, vs, ve)[0]
            os.makedirs(sys.argv[2], exist_ok=True)
            with open(os.path.join(sys.argv[2], 'token.der'), 'wb') as f:
                f.write(der[start:te])
            print(hashlib.sha256(der[sig[1]:sig[2]]).hexdigest())
            return
    sys.exit('no id-aa-timeStampToken attribute')


if __name__ == '__main__':
    main()
