// Encrypt one device token exactly as chatmail core does (src/push.rs,
// encrypt_device_token; see tests/data/openpgp/README.md and the token
// profile in docs/openpgp.md), with OpenPGP.js, an
// implementation independent of proxyd's decoder:
//
//   node encrypt.mjs TOKEN [CERT_FILE]
//
// prints "openpgp:" + standard base64 of the binary message. CERT_FILE
// defaults to $TESTDATA/openpgp/cert-v6.asc, else
// <repo>/tests/data/openpgp/cert-v6.asc; the FIRST certificate in it
// (its first armored block) is the recipient.
//
//  1. pad the token with ASCII spaces to 512 octets (longer ones stay);
//  2. literal data packet: format 'b', empty file name, date 0;
//  3. v6 PKESK to the X25519 subkey, v2 SEIPD, AES-128 (7), OCB (2), chunk
//     size octet 7; no compression, no signature, no padding packet;
//  4. fixed-length packet headers: OpenPGP.js streams the SEIPD packet with
//     partial body lengths, rPGP (which core uses) writes one fixed length,
//     so every top-level packet is re-framed with its body kept octet for
//     octet.
// The result is checked against the shape core produces (c1 5d <PKESK v6>
// d2 c1 8d <SEIPD v2 7 2 7> for a token up to 512 octets); any mismatch
// exits 1 rather than printing a message core would never send.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as openpgp from 'openpgp';
import { fixedHeader, splitPackets } from '../../data/openpgp/generate/packets.mjs';

const PAD_TO = 512;

function die(msg) {
  process.stderr.write(`encrypt.mjs: ${msg}\n`);
  process.exit(1);
}

function defaultCertPath() {
  const here = dirname(fileURLToPath(import.meta.url));
  const testdata = process.env.TESTDATA ||
    join(here, '..', '..', 'data');
  return join(testdata, 'openpgp', 'cert-v6.asc');
}

const token = process.argv[2];
if (token === undefined) die('usage: node encrypt.mjs TOKEN [CERT_FILE]');
const certText = readFileSync(process.argv[3] || defaultCertPath(), 'utf8');
const END = '-----END PGP PUBLIC KEY BLOCK-----';
const end = certText.indexOf(END);
if (end < 0) die('no armored public key block in the certificate file');
const cert = await openpgp.readKey({ armoredKey: certText.slice(0, end + END.length) + '\n' });

const raw = Buffer.from(token, 'utf8');
const padded = raw.length >= PAD_TO ? raw :
  Buffer.concat([raw, Buffer.alloc(PAD_TO - raw.length, 0x20)]);

const message = await openpgp.createMessage({
  binary: new Uint8Array(padded), filename: '', date: new Date(0), format: 'binary',
});
const { enums } = openpgp;
const encrypted = await openpgp.encrypt({
  message,
  encryptionKeys: cert,
  format: 'binary',
  config: {
    aeadProtect: true,
    preferredAEADAlgorithm: enums.aead.ocb,
    preferredSymmetricAlgorithm: enums.symmetric.aes128,
    aeadChunkSizeByte: 7,
    preferredCompressionAlgorithm: enums.compression.uncompressed,
  },
});

let packets;
try {
  packets = splitPackets(Buffer.from(encrypted));
} catch (e) {
  die(e.message);
}
if (packets.length !== 2 || packets[0].tag !== 1 || packets[1].tag !== 18) {
  die(`expected PKESK + SEIPD, got tags ${packets.map((p) => p.tag).join(',')}`);
}
const [pkesk, seipd] = packets;
// v6 PKESK: version 6, 33 = 1 + 32, key version 6, fingerprint, X25519 (25)
if (pkesk.body[0] !== 6 || pkesk.body[1] !== 33 || pkesk.body[2] !== 6 || pkesk.body[35] !== 25) {
  die('the PKESK is not a v6 PKESK to an X25519 v6 key');
}
const enc = await cert.getEncryptionKey();
if (Buffer.compare(pkesk.body.subarray(3, 35), Buffer.from(enc.getFingerprint(), 'hex')) !== 0 ||
    enc === cert) {
  die('the PKESK does not address the X25519 subkey');
}
// v2 SEIPD: version 2, AES-128 (7), OCB (2), chunk size octet 7
if (seipd.body[0] !== 2 || seipd.body[1] !== 7 || seipd.body[2] !== 2 || seipd.body[3] !== 7) {
  die(`SEIPD header ${Array.from(seipd.body.subarray(0, 4)).join(' ')}, expected 2 7 2 7`);
}
const out = Buffer.concat(packets.flatMap((p) => [fixedHeader(p.tag, p.body.length), p.body]));
if (raw.length <= PAD_TO && out.length !== 687) die(`message of ${out.length} octets, core's has 687`);
process.stdout.write(`openpgp:${out.toString('base64')}\n`);
