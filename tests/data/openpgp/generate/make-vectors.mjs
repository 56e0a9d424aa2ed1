// Makes the OpenPGP test keys and vectors of tests/data/openpgp with
// OpenPGP.js (an implementation independent of proxyd's decoder):
//
//   node make-vectors.mjs OUTDIR [--fuzz-seeds DIR]
//
// OUTDIR receives fresh keys (keyring-v6.asc, keyring-v6-oneblock.asc,
// cert-v6.asc, keyring-v4.asc, cert-v4.asc), vectors.tsv and
// vectors-notes.tsv, plus the three RFC 9580 files copied verbatim from
// rfc9580/ next to this script. With --fuzz-seeds, DIR receives the seed
// corpus of tests/fuzz/corpus/openpgp (binary messages of some rows, the
// one-block keyring and small decrypted packet streams). Encryption is
// randomized: every run gives new keys and ciphertexts, the same rows,
// plaintexts and expected results. verify.mjs and rfc9580_decode.py check
// the result (make.sh runs all three). Test keys only: the secret keys
// are published on purpose.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ReadableStream } from 'node:stream/web';
import { deflateRawSync, deflateSync } from 'node:zlib';
import * as openpgp from 'openpgp';
import { crc24, packet, reframe, splitPackets } from './packets.mjs';

const { enums } = openpgp;
const HERE = dirname(fileURLToPath(import.meta.url));
const CREATED = new Date('2026-01-01T00:00:00Z');
const PAD_TO = 512;
const RFC_FILES = ['rfc9580-a3-cert.asc', 'rfc9580-a4-secret.asc', 'rfc9580-a8-message.asc'];

function die(msg) {
  process.stderr.write(`make-vectors: ${msg}\n`);
  process.exit(1);
}

function check(cond, msg) {
  if (!cond) die(`internal check failed: ${msg}`);
}

// ---- packets -------------------------------------------------------------

// ---- armor ---------------------------------------------------------------

// An armored block written by hand: optional Comment header, 64-column
// base64, CRC-24 line.
function armorWithCrc(kind, bytes, comment) {
  const b64 = Buffer.from(bytes).toString('base64');
  const lines = [`-----BEGIN PGP ${kind}-----`];
  if (comment) lines.push(`Comment: ${comment}`);
  lines.push('');
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  const crc = Buffer.alloc(3);
  crc.writeUIntBE(crc24(bytes), 0, 3);
  lines.push(`=${crc.toString('base64')}`);
  lines.push(`-----END PGP ${kind}-----`, '');
  return lines.join('\n');
}

// ---- keys ----------------------------------------------------------------

const V6_CONFIG = {
  v6Keys: true,
  aeadProtect: true,
  preferredAEADAlgorithm: enums.aead.ocb,
  preferredSymmetricAlgorithm: enums.symmetric.aes128,
};

async function v6Key(userIDs) {
  const { privateKey } = await openpgp.generateKey({
    type: 'curve25519', userIDs, date: CREATED, format: 'object', config: V6_CONFIG,
  });
  check(privateKey.keyPacket.version === 6 && privateKey.keyPacket.algorithm === enums.publicKey.ed25519, 'v6 primary');
  const sub = privateKey.subkeys;
  check(sub.length === 1 && sub[0].keyPacket.algorithm === enums.publicKey.x25519, 'v6 X25519 subkey');
  return privateKey;
}

async function legacyKey() {
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ email: 'legacy-shared@example.org' }],
    date: CREATED, format: 'object', config: { v6Keys: false, aeadProtect: false },
  });
  check(privateKey.keyPacket.version === 4 && privateKey.keyPacket.algorithm === enums.publicKey.eddsaLegacy, 'v4 primary');
  check(privateKey.subkeys.length === 1 && privateKey.subkeys[0].keyPacket.algorithm === enums.publicKey.ecdh, 'v4 ECDH subkey');
  return privateKey;
}

// ---- messages ------------------------------------------------------------

// Chatmail core's settings (src/push.rs encrypt_device_token via rPGP).
const CORE_CONFIG = {
  aeadProtect: true,
  preferredAEADAlgorithm: enums.aead.ocb,
  preferredSymmetricAlgorithm: enums.symmetric.aes128,
  aeadChunkSizeByte: 7,
  preferredCompressionAlgorithm: enums.compression.uncompressed,
};

const utf8 = (s) => Buffer.from(s, 'utf8');
const pad = (b) => (b.length >= PAD_TO ? Buffer.from(b)
  : Buffer.concat([b, Buffer.alloc(PAD_TO - b.length, 0x20)]));

async function readAll(out) {
  if (out instanceof Uint8Array) return Buffer.from(out);
  const chunks = [];
  const reader = out.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks);
}

// A message of one literal packet ('b', no file name, date 0 unless told).
function literalMessage(data, { filename = '', date = new Date(0), format = 'binary' } = {}) {
  return openpgp.createMessage({ binary: new Uint8Array(data), filename, date, format });
}

// Encrypt with OpenPGP.js; returns its binary output unchanged.
async function encryptRaw(message, recipients, opts = {}) {
  const out = await openpgp.encrypt({
    message,
    encryptionKeys: recipients,
    format: 'binary',
    config: { ...CORE_CONFIG, ...(opts.config || {}) },
    sessionKey: opts.sessionKey,
    wildcard: opts.wildcard || false,
    signingKeys: opts.signingKeys,
  });
  return readAll(out);
}

// Encrypt and re-frame every top-level packet with a fixed length.
async function encryptFixed(message, recipients, opts) {
  return reframe(splitPackets(await encryptRaw(message, recipients, opts)));
}

const coreMessage = async (tokenBytes, recipient, opts) =>
  encryptFixed(await literalMessage(pad(tokenBytes)), [recipient], opts);

// Offsets of the parts of a core-shaped message (c1 5d PKESK, d2 c1 8d
// SEIPD for a plaintext of up to 512 octets; longer ones differ only in
// the SEIPD length).
function coreLayout(bin) {
  check(bin[0] === 0xc1 && bin[1] === 0x5d, 'core PKESK header c1 5d');
  const pk = 2; // PKESK body
  check(bin[pk] === 6 && bin[pk + 1] === 0x21 && bin[pk + 2] === 6 && bin[pk + 35] === 25, 'v6 PKESK to an X25519 v6 key');
  check(bin[95] === 0xd2 && bin[96] >= 192 && bin[96] < 224, 'SEIPD with a 2-octet length');
  const s = 98; // SEIPD body
  const len = ((bin[96] - 192) << 8) + bin[97] + 192;
  check(s + len === bin.length, 'SEIPD runs to the end');
  check(bin[s] === 2 && bin[s + 1] === 7 && bin[s + 2] === 2, 'SEIPD v2 AES-128 OCB');
  return {
    fpr: pk + 3, eph: pk + 36, wrapped: pk + 69, seipdHeader: 95, seipd: s, seipdLen: len,
    salt: s + 4, chunk: s + 36, finalTag: bin.length - 16, chunkTag: bin.length - 32,
  };
}

function flip(bin, at, mask) {
  const b = Buffer.from(bin);
  b[at] ^= mask;
  return b;
}

function setOctet(bin, at, value) {
  const b = Buffer.from(bin);
  b[at] = value;
  return b;
}

// ---- main ----------------------------------------------------------------

const args = process.argv.slice(2);
let outDir = null;
let seedDir = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--fuzz-seeds') seedDir = args[++i];
  else if (outDir === null) outDir = args[i];
  else die('usage: node make-vectors.mjs OUTDIR [--fuzz-seeds DIR]');
}
if (!outDir || (args.includes('--fuzz-seeds') && !seedDir)) {
  die('usage: node make-vectors.mjs OUTDIR [--fuzz-seeds DIR]');
}

// Fixed plaintexts (fake tokens): tokens.tsv, "id<TAB>token".
const TOK = {};
for (const line of readFileSync(join(HERE, 'tokens.tsv'), 'utf8').split('\n')) {
  if (line === '' || line.startsWith('#')) continue;
  const [id, tok] = line.split('\t');
  TOK[id] = utf8(tok);
}

const k1 = await v6Key([]);
const k2 = await v6Key([{ email: 'notifiers-shared@example.org' }]);
const kl = await legacyKey();
const foreign = await v6Key([{ email: 'foreign@example.org' }]); // never written out
const [p1, p2, pl, pf] = [k1, k2, kl, foreign].map((k) => k.toPublic());

mkdirSync(outDir, { recursive: true });
const put = (name, text) => writeFileSync(join(outDir, name), text);
const keyringV6 = k1.armor() +
  armorWithCrc('PRIVATE KEY BLOCK', k2.write(), 'test key 2, 64-column base64 with a CRC-24 line');
put('keyring-v6.asc', keyringV6);
const oneBlock = openpgp.armor(enums.armor.privateKey, Buffer.concat([k1.write(), k2.write()]));
put('keyring-v6-oneblock.asc', oneBlock);
put('cert-v6.asc', p1.armor() + p2.armor());
put('keyring-v4.asc', kl.armor());
put('cert-v4.asc', pl.armor());
for (const f of RFC_FILES) copyFileSync(join(HERE, 'rfc9580', f), join(outDir, f));

const KR6 = 'keyring-v6.asc';
const rows = [];
function row(name, keyring, bin, expected, note) {
  const input = typeof bin === 'string' ? bin : `openpgp:${bin.toString('base64')}`;
  rows.push({ name, keyring, input, expected, note, bin: typeof bin === 'string' ? null : bin });
  return bin;
}
const ok = (id) => TOK[id].toString('utf8');

// core_: exactly what chatmail core sends.
for (const [name, id, key, kr] of [
  ['core_apns_k1', 'apns', p1, KR6],
  ['core_apns_sandbox_k2', 'apns_sandbox', p2, KR6],
  ['core_fcm_k2', 'fcm', p2, KR6],
  ['core_fcm_beta_k1', 'fcm_beta', p1, KR6],
  ['core_webpush_k1', 'webpush', p1, KR6],
  ['core_ubports_k2', 'ubports', p2, KR6],
  ['core_len512_exact_k1', 'fcm_512', p1, KR6],
  ['core_len511_k2', 'fcm_511', p2, KR6],
  ['core_apns_k2_oneblock_keyring', 'apns_2', p2, 'keyring-v6-oneblock.asc'],
  ['core_fcm_k1_oneblock_keyring', 'fcm', p1, 'keyring-v6-oneblock.asc'],
]) {
  const bin = await coreMessage(TOK[id], key);
  check(bin.length === 687 && bin[95] === 0xd2 && bin[96] === 0xc1 && bin[97] === 0x8d, `${name}: core shape`);
  coreLayout(bin);
  const what = {
    apns: 'APNs production token (64 hex digits)',
    apns_sandbox: 'APNs sandbox token (sandbox: prefix)',
    fcm: 'FCM token (fcm-<package>:<token>)',
    fcm_beta: 'FCM token of the beta app package',
    webpush: 'Web Push token: endpoint|p256dh|auth',
    ubports: 'UBports token (base64 with + / =)',
    fcm_512: 'token of exactly 512 octets, so no padding at all',
    fcm_511: 'token of 511 octets, one padding space',
    apns_2: 'APNs token to key 2, keyring with both keys in one armored block',
  }[id];
  const note = name === 'core_fcm_k1_oneblock_keyring'
    ? 'FCM token to key 1, keyring with both keys in one armored block' : what;
  row(name, kr, bin, ok(id), note);
}

// edge_: core-shaped, unusual lengths.
{
  const bin = await coreMessage(TOK.fcm_600, p1);
  coreLayout(bin);
  row('edge_len600_k1', KR6, bin, ok('fcm_600'), 'token of 600 octets: longer than the padding target, sent as is');
  row('edge_empty_token_k1', KR6, await coreMessage(Buffer.alloc(0), p1), 'ERROR:empty',
    'empty token: decrypts to 512 spaces, nothing left after trimming');
}
row('neg_plaintext_not_utf8_k2', KR6,
  await coreMessage(Buffer.concat([utf8('fcm-chat.delta:'), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), utf8('abc')]), p2),
  'ERROR:utf8', 'core-shaped, but the literal data is not UTF-8 (c3 28, ff fe)');

// rfc_: valid RFC 9580 messages core does not produce.
{
  const bin = await coreMessage(TOK.fcm, p1, { config: { aeadChunkSizeByte: 0 } });
  check(bin[98 + 3] === 0, 'chunk octet 0');
  row('rfc_chunk64_multichunk_k1', KR6, bin, ok('fcm'), 'chunk size octet 0 (64-octet chunks): 521 octets make 9 chunks, the last one short');
}
{
  // 3 (header) + 6 (literal fields) + 567 = 576 = 9 * 64
  const bin = await coreMessage(TOK.fcm_567, p2, { config: { aeadChunkSizeByte: 0 } });
  const seipdLen = bin.length - 98;
  check(seipdLen === 4 + 32 + 576 + 9 * 16 + 16, 'exactly 9 full chunks');
  row('rfc_chunk64_exact_multiple_k2', KR6, bin, ok('fcm_567'),
    'chunk size octet 0 and a plaintext of exactly 9*64 octets: no empty last chunk, the final tag uses index 9');
}
row('rfc_chunk4mib_k1', KR6, await coreMessage(TOK.apns, p1, { config: { aeadChunkSizeByte: 16 } }), ok('apns'),
  'chunk size octet 16 (4 MiB chunks), the largest allowed');
const sessionKey = (algorithm, aeadAlgorithm) => ({
  data: new Uint8Array(randomBytes(algorithm === 'aes256' ? 32 : 16)), algorithm, aeadAlgorithm,
});
row('rfc_aes256_ocb_k2', KR6, await coreMessage(TOK.webpush, p2, { sessionKey: sessionKey('aes256', 'ocb') }),
  ok('webpush'), 'AES-256 with OCB: 32-octet session key, 40-octet wrapped key, same AES-128 KEK');
row('rfc_aes128_gcm_k1', KR6, await coreMessage(TOK.apns_sandbox, p1, { sessionKey: sessionKey('aes128', 'gcm') }),
  ok('apns_sandbox'), 'AES-128 with GCM: 12-octet nonce, 4-octet IV and the chunk index');
row('rfc_aes128_eax_k2', KR6, await coreMessage(TOK.ubports, p2, { sessionKey: sessionKey('aes128', 'eax') }),
  ok('ubports'), 'AES-128 with EAX: 16-octet nonce, 8-octet IV and the chunk index');
{
  const data = pad(TOK.fcm_beta);
  const stream = new ReadableStream({
    start(c) {
      c.enqueue(new Uint8Array(data.subarray(0, 300)));
      c.enqueue(new Uint8Array(data.subarray(300)));
      c.close();
    },
  });
  const msg = await openpgp.createMessage({ binary: stream, filename: '', date: new Date(0), format: 'binary' });
  const bin = await encryptRaw(msg, [p1]);
  const pk = splitPackets(bin);
  check(pk.length === 2 && !pk[0].partial && pk[1].partial, 'streamed: partial SEIPD');
  row('rfc_partial_lengths_streamed_k1', KR6, bin, ok('fcm_beta'),
    'streamed input as OpenPGP.js writes it: partial body lengths on the SEIPD and on the literal packet inside');
}
{
  const bin = await encryptRaw(await literalMessage(pad(TOK.apns)), [p2]);
  const pk = splitPackets(bin);
  check(pk.length === 2 && pk[1].partial, 'OpenPGP.js framing: partial SEIPD');
  row('rfc_partial_lengths_seipd_k2', KR6, bin, ok('apns'),
    'core\'s message as OpenPGP.js frames it, not re-framed: the SEIPD uses partial body lengths');
}
row('rfc_literal_filename_and_date_k2', KR6,
  await encryptFixed(await literalMessage(pad(TOK.apns), { filename: 'token.txt', date: CREATED }), [p2]),
  ok('apns'), 'literal packet with file name "token.txt" and a non-zero date');
row('rfc_literal_format_u_k1', KR6,
  await encryptFixed(await literalMessage(pad(TOK.apns_sandbox), { format: 'utf8' }), [p1]),
  ok('apns_sandbox'), 'literal format octet \'u\' (UTF-8 text) instead of \'b\'');
{
  const msg = await literalMessage(pad(TOK.fcm));
  const padding = new openpgp.PaddingPacket();
  await padding.createPadding(32);
  msg.packets.push(padding);
  row('rfc_padding_packet_k2', KR6, await encryptFixed(msg, [p2]), ok('fcm'),
    'a Padding packet (tag 21, 32 random octets) after the literal packet inside the SEIPD');
}
for (const [name, algo, label] of [
  ['rfc_compressed_zlib_k1', enums.compression.zlib, 'ZLIB'],
  ['rfc_compressed_zip_k1', enums.compression.zip, 'ZIP (raw deflate)'],
]) {
  const msg = await (await literalMessage(pad(TOK.webpush))).compress(algo);
  const bin = await encryptFixed(msg, [p1]);
  check(bin.length < 600, `${name}: compressed`);
  row(name, KR6, bin, ok('webpush'), `the literal packet inside a ${label} Compressed Data packet`);
}
{
  const bin = await encryptFixed(await literalMessage(pad(TOK.apns_sandbox)), [pf, p2]);
  const pk = splitPackets(bin);
  check(pk.length === 3 && pk[0].tag === 1 && pk[1].tag === 1, 'two PKESKs');
  row('rfc_two_recipients_foreign_first_k2', KR6, bin, ok('apns_sandbox'),
    'two v6 PKESKs, the first to a key that is not in the keyring');
}
{
  const bin = await encryptFixed(await literalMessage(pad(TOK.apns)), [p1], { wildcard: true });
  const pk = splitPackets(bin);
  check(pk[0].body[0] === 6 && pk[0].body[1] === 0 && pk[0].body[2] === 25, 'anonymous v6 PKESK');
  row('rfc_anonymous_recipient_k1', KR6, bin, ok('apns'),
    'anonymous v6 PKESK (key version and fingerprint length 0): every X25519 key has to be tried');
}
{
  const bin = await encryptFixed(await literalMessage(pad(TOK.fcm_beta)), [p2], { sessionKey: sessionKey('aes128') });
  const pk = splitPackets(bin);
  check(pk[0].body[0] === 3 && pk[0].body[9] === 25 && pk[1].body[0] === 1, 'v3 PKESK X25519 + SEIPDv1');
  row('rfc_seipdv1_to_v6_key_k2', KR6, bin, ok('fcm_beta'),
    'v3 PKESK (X25519, cipher octet in clear) and a v1 SEIPD (CFB + MDC) to the v6 key\'s X25519 subkey');
}
row('rfc_signed_inside_k1', KR6,
  await encryptFixed(await literalMessage(pad(TOK.ubports)), [p1], { signingKeys: [foreign] }),
  ok('ubports'), 'one-pass signed inside the SEIPD (OPS, literal, signature) by a key the decoder does not know');
row('rfc_marker_packet_first_k2', KR6,
  Buffer.concat([packet(10, Buffer.from('PGP')), await coreMessage(TOK.apns_2, p2)]),
  ok('apns_2'), 'a Marker packet (tag 10, "PGP") before the PKESK, to be ignored');
{
  const bin = await coreMessage(TOK.fcm, p1);
  check(bin[0] === 0xc1 && bin[1] === 93, 'core PKESK');
  row('rfc_legacy_header_pkesk_k1', KR6, Buffer.concat([Buffer.from([0x84, 93]), bin.subarray(2)]), ok('fcm'),
    'the PKESK with a legacy-format header (84 5d: tag 1, one length octet)');
}
row('rfc_padding_packet_after_seipd_k1', KR6,
  Buffer.concat([await coreMessage(TOK.webpush, p1), packet(21, randomBytes(8))]),
  ok('webpush'), 'a top-level Padding packet after the SEIPD, to be ignored');
{
  const msg = await literalMessage(pad(TOK.apns_sandbox));
  msg.packets.unshift(new openpgp.UnparseablePacket(40, new Uint8Array([1, 2, 3])));
  row('rfc_unknown_noncritical_packet_inside_k2', KR6, await encryptFixed(msg, [p2]), ok('apns_sandbox'),
    'an unknown non-critical packet (tag 40) before the literal packet inside, to be ignored');
}

// neg_ made by OpenPGP.js.
{
  const msg = await literalMessage(pad(TOK.apns));
  msg.packets.push(new openpgp.UnparseablePacket(30, new Uint8Array([1, 2, 3])));
  row('neg_unknown_critical_packet_inside', KR6, await encryptFixed(msg, [p1]), 'ERROR:malformed',
    'an unknown critical packet (tag 30) after the literal packet inside: the whole message is invalid');
}
{
  const padding = new openpgp.PaddingPacket();
  await padding.createPadding(16);
  const list = new openpgp.PacketList();
  list.push(padding);
  row('neg_no_literal_inside', KR6, await encryptFixed(new openpgp.Message(list), [p2]), 'ERROR:malformed',
    'the SEIPD holds a lone Padding packet and no literal data');
}
{
  const msg = await literalMessage(pad(TOK.apns));
  const second = await literalMessage(pad(TOK.fcm));
  msg.packets.push(...second.packets);
  row('neg_two_literals_inside', KR6, await encryptFixed(msg, [p1]), 'ERROR:malformed',
    'two literal packets inside: not an OpenPGP message');
}
row('neg_wrong_key', KR6, await coreMessage(TOK.apns, pf), 'ERROR:no-key',
  'core-shaped, but the only PKESK is to a key that is not in the keyring');

// ctl_ and the neg_ rows derived from it. Its session key is kept for
// neg_v6_pkesk_with_seipdv1.
const ctlKey = sessionKey('aes128', 'ocb');
const ctl = row('ctl_base_for_mutations_k1', KR6, await coreMessage(TOK.apns_sandbox, p1, { sessionKey: ctlKey }),
  ok('apns_sandbox'), 'the unchanged core-shaped message the neg_ mutations below start from');
check(ctl.length === 687, 'ctl: core shape');
const L = coreLayout(ctl);
const mut = (name, bin, kind, note) => row(name, KR6, bin, `ERROR:${kind}`, note);
mut('neg_truncated_half', ctl.subarray(0, ctl.length >> 1), 'malformed',
  'the control message cut in half: the SEIPD length runs past the end');
mut('neg_truncated_last_byte', ctl.subarray(0, ctl.length - 1), 'malformed',
  'the control message without its last octet');
{
  const body = ctl.subarray(L.seipd, ctl.length - 16);
  mut('neg_final_tag_removed_reframed', Buffer.concat([ctl.subarray(0, L.seipdHeader), packet(18, body)]), 'auth',
    'the final tag cut off and the SEIPD length fixed: the chunk tag is taken for the final tag');
}
mut('neg_final_tag_bitflip', flip(ctl, L.finalTag + 8, 0x08), 'auth', 'one bit flipped in the final tag');
mut('neg_chunk_tag_bitflip', flip(ctl, L.chunkTag + 8, 0x01), 'auth', 'one bit flipped in the tag of chunk 0');
mut('neg_ciphertext_bitflip', flip(ctl, L.chunk + 260, 0x80), 'auth', 'one bit flipped in the ciphertext of chunk 0');
mut('neg_salt_bitflip', flip(ctl, L.salt + 16, 0x04), 'auth', 'one bit flipped in the SEIPD salt: another message key and IV');
mut('neg_chunk_size_octet_changed', setOctet(ctl, L.seipd + 3, 6), 'auth',
  'chunk size octet 7 changed to 6: it is part of the HKDF info and the associated data');
mut('neg_cipher_octet_aes256', setOctet(ctl, L.seipd + 1, 9), 'malformed',
  'cipher octet says AES-256 but the session key has 16 octets');
mut('neg_aead_octet_unknown', setOctet(ctl, L.seipd + 2, 99), 'unsupported', 'AEAD algorithm octet 99 (unassigned)');
mut('neg_seipd_version_3', setOctet(ctl, L.seipd, 3), 'unsupported', 'SEIPD version octet 3');
mut('neg_wrapped_key_bitflip', flip(ctl, L.wrapped + 12, 0x02), 'unwrap',
  'one bit flipped in the wrapped session key: the key unwrap integrity check fails');
mut('neg_ephemeral_bitflip', flip(ctl, L.eph + 16, 0x10), 'unwrap',
  'one bit flipped in the ephemeral X25519 key: another KEK, the unwrap fails');
// Within the first 8 octets (the v6 key ID), which OpenPGP.js matches on.
mut('neg_fingerprint_bitflip', flip(ctl, L.fpr + 4, 0x01), 'no-key',
  'one bit flipped in the key ID part of the recipient fingerprint: it matches no key of the keyring');
mut('neg_no_pkesk', ctl.subarray(L.seipdHeader), 'no-key', 'the SEIPD alone, without any PKESK');
mut('neg_pkesk_only', ctl.subarray(0, L.seipdHeader), 'malformed', 'the PKESK alone, without an encrypted data packet');
mut('neg_trailing_garbage', Buffer.concat([ctl, Buffer.from([0, 1, 2])]), 'malformed',
  'three octets (00 01 02) after the SEIPD packet');
{
  // A v1 SEIPD under the control message's own session key, after its v6
  // PKESK: only the version rule (RFC 9580 10.3.2.1) keeps it out.
  const v1 = splitPackets(await encryptRaw(await literalMessage(pad(TOK.apns_sandbox)), [p1],
    { sessionKey: { data: ctlKey.data, algorithm: 'aes128' } }));
  check(v1[1].tag === 18 && v1[1].body[0] === 1, 'SEIPDv1');
  mut('neg_v6_pkesk_with_seipdv1', Buffer.concat([ctl.subarray(0, L.seipdHeader), packet(18, v1[1].body)]), 'no-key',
    'the control message\'s v6 PKESK in front of a v1 SEIPD under the same session key: the ESK must be discarded');
}
{
  const b64 = ctl.toString('base64');
  const at = 200;
  check(b64.length % 4 === 0 && b64[at] !== '*', 'ctl base64');
  mut('neg_base64_invalid_char', `openpgp:${b64.slice(0, at)}*${b64.slice(at + 1)}`, 'base64',
    'the control message\'s base64 with one character replaced by \'*\'');
  mut('neg_base64_bad_length', `openpgp:${b64}A`, 'base64',
    'the control message\'s base64 with one character added: a dangling 6-bit group');
}
mut('neg_empty_payload', 'openpgp:', 'malformed', 'nothing after the prefix');
{
  const r = randomBytes(300);
  r[0] = 0x3f;
  mut('neg_random_bytes', r, 'malformed', '300 random octets; the first (3f) has bit 7 clear, so it is no packet header');
}

// legacy_: the v4 key (ECDH Curve25519Legacy).
const LEGACY_CONFIG = { config: { aeadProtect: false } };
async function legacyMessage(id) {
  const bin = await encryptFixed(await literalMessage(pad(TOK[id])), [pl], LEGACY_CONFIG);
  const pk = splitPackets(bin);
  check(pk.length === 2 && pk[0].body[0] === 3 && pk[0].body[9] === 18 && pk[1].body[0] === 1,
    'v3 PKESK ECDH + SEIPDv1');
  return bin;
}
for (const id of ['apns', 'fcm', 'webpush']) {
  row(`legacy_v4_seipdv1_${id}`, 'keyring-v4.asc', await legacyMessage(id), ok(id),
    'v4 key: v3 PKESK (ECDH Curve25519Legacy) and a v1 SEIPD');
}
{
  const bin = await encryptFixed(await literalMessage(pad(TOK.apns_sandbox)), [pl],
    { sessionKey: sessionKey('aes128', 'ocb') });
  const pk = splitPackets(bin);
  check(pk[0].body[0] === 6 && pk[0].body[1] === 21 && pk[0].body[2] === 4 && pk[0].body[23] === 18, 'v6 PKESK to v4 ECDH');
  row('legacy_v4_key_seipdv2', 'keyring-v4.asc', bin, ok('apns_sandbox'),
    'v4 key: v6 PKESK (key version 4, 20-octet fingerprint, ECDH) and a v2 SEIPD with OCB');
}
{
  const bin = await legacyMessage('apns');
  const at = bin.length - 250; // inside the SEIPDv1 ciphertext, before the MDC
  row('neg_legacy_seipdv1_bitflip', 'keyring-v4.asc', flip(bin, at, 0x20), 'ERROR:auth',
    'v4 message with one bit of the v1 SEIPD ciphertext flipped: the MDC does not match');
}
row('neg_v4_message_with_v6_keyring', KR6, await legacyMessage('fcm'), 'ERROR:no-key',
  'a message to the v4 key, tried with the v6 keyring');

// rfc9580_: the RFC's own sample message, A.8 with the A.4 key.
{
  const text = readFileSync(join(HERE, 'rfc9580', 'rfc9580-a8-message.asc'), 'utf8');
  const { data } = await openpgp.unarmor(text);
  row('rfc9580_a8_x25519_aead_ocb', 'rfc9580-a4-secret.asc', Buffer.from(await readAll(data)), 'Hello, world!',
    'RFC 9580 A.8: v6 PKESK X25519, v2 SEIPD AES-128 OCB with chunk octet 6, literal and Padding packet inside');
}

// ---- write ---------------------------------------------------------------

const names = new Set();
for (const r of rows) {
  check(!names.has(r.name), `duplicate row ${r.name}`);
  names.add(r.name);
  for (const f of [r.name, r.keyring, r.input, r.expected, r.note]) check(!/[\t\n\r]/.test(f), `${r.name}: tab or newline`);
}
put('vectors.tsv', ['name\tkeyring\tinput\texpected', ...rows.map((r) => [r.name, r.keyring, r.input, r.expected].join('\t'))].join('\n') + '\n');
put('vectors-notes.tsv', ['name\tnote', ...rows.map((r) => `${r.name}\t${r.note}`)].join('\n') + '\n');
process.stdout.write(`make-vectors: ${rows.length} rows, keys and RFC files written to ${outDir}\n`);

if (seedDir) {
  // Seeds for tests/fuzz/fuzz_openpgp.c, whose built-in keyring is
  // keyring-v6.asc: binary messages of some rows, the one-block keyring,
  // and small decrypted packet streams for the inner grammar.
  mkdirSync(seedDir, { recursive: true });
  const seedRows = ['core_apns_k1', 'core_webpush_k1', 'rfc_aes128_eax_k2', 'rfc_aes128_gcm_k1',
    'rfc_aes256_ocb_k2', 'rfc_anonymous_recipient_k1', 'rfc_chunk64_multichunk_k1', 'rfc_compressed_zip_k1',
    'rfc_compressed_zlib_k1', 'rfc_legacy_header_pkesk_k1', 'rfc_marker_packet_first_k2',
    'rfc_partial_lengths_streamed_k1', 'rfc_seipdv1_to_v6_key_k2', 'rfc_signed_inside_k1',
    'rfc_two_recipients_foreign_first_k2'];
  for (const name of seedRows) writeFileSync(join(seedDir, name), rows.find((r) => r.name === name).bin);
  writeFileSync(join(seedDir, 'keyring_v6_asc'), oneBlock);
  const text = Buffer.concat([TOK.apns.subarray(0, 32), Buffer.alloc(40, 0x20)]);
  const lit = packet(11, Buffer.concat([Buffer.from([0x62, 0, 0, 0, 0, 0]), text]));
  writeFileSync(join(seedDir, 'inner_literal'), Buffer.concat([lit, packet(21, Buffer.alloc(8))]));
  writeFileSync(join(seedDir, 'inner_signed'),
    Buffer.concat([packet(4, Buffer.alloc(20, 6)), lit, packet(2, Buffer.alloc(30, 6))]));
  writeFileSync(join(seedDir, 'inner_zip'), packet(8, Buffer.concat([Buffer.from([1]), deflateRawSync(lit)])));
  writeFileSync(join(seedDir, 'inner_zlib'), packet(8, Buffer.concat([Buffer.from([2]), deflateSync(lit)])));
  process.stdout.write(`make-vectors: fuzz seeds written to ${seedDir}\n`);
}
