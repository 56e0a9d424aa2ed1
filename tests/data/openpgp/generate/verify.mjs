// Checks a generated data set with OpenPGP.js:
//
//   node verify.mjs [-v] DIR      (-v: one line per row)
//
// The files are all there and shaped as tests/data/openpgp/README.md says
// (blocks, armor headers, CRC lines, key versions and algorithms, creation
// date, no expiry, certificates matching the keys); vectors.tsv and
// vectors-notes.tsv list the same rows; core_ rows have core's exact
// shape; and every row, decrypted by OpenPGP.js with the keys read back
// from its keyring file, gives `expected` or is rejected on an ERROR: row.
// OpenPGP.js has no notion of the token text, so the steps around it are
// done here: strict base64 after "openpgp:", UTF-8 and trimming of the
// literal data. Exits 1 on any disagreement.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { crc24 } from './packets.mjs';

const { enums } = openpgp;
const CREATED = Date.parse('2026-01-01T00:00:00Z');
const GROUPS = ['core_', 'edge_', 'ctl_', 'rfc_', 'rfc9580_', 'neg_', 'legacy_'];
const verbose = process.argv[2] === '-v';
const dir = process.argv[verbose ? 3 : 2];
if (!dir) {
  process.stderr.write('usage: node verify.mjs [-v] DIR\n');
  process.exit(2);
}

const problems = [];
const problem = (msg) => problems.push(msg);
const read = (name) => readFileSync(join(dir, name), 'utf8');

// Armored blocks of a file: [{kind, headers, body, crc, lines}].
function blocks(text) {
  const out = [];
  const re = /-----BEGIN PGP ([A-Z ]+)-----\n([\s\S]*?)-----END PGP \1-----\n/g;
  for (const m of text.matchAll(re)) {
    const [head, rest] = m[2].split(/\n\n/, 2).length === 2
      ? [m[2].slice(0, m[2].indexOf('\n\n')), m[2].slice(m[2].indexOf('\n\n') + 2)] : ['', m[2]];
    const lines = rest.split('\n').filter((l) => l !== '');
    const crc = lines.length && lines[lines.length - 1].startsWith('=') ? lines.pop() : null;
    out.push({ kind: m[1], headers: head === '' ? [] : head.split('\n'), lines, crc, text: m[0] });
  }
  return out;
}

function checkCrc(file, b) {
  const data = Buffer.from(b.lines.join(''), 'base64');
  const want = Buffer.from(b.crc.slice(1), 'base64');
  if (want.length !== 3 || want.readUIntBE(0, 3) !== crc24(data)) problem(`${file}: CRC-24 line does not match`);
}

async function privateKeys(file) {
  const keys = [];
  for (const b of blocks(read(file))) {
    if (b.kind === 'PRIVATE KEY BLOCK') keys.push(...await openpgp.readPrivateKeys({ armoredKeys: b.text }));
  }
  return keys;
}

async function checkKey(file, key, version) {
  if (key.keyPacket.version !== version) problem(`${file}: key version ${key.keyPacket.version}`);
  if (key.keyPacket.created.getTime() !== CREATED) problem(`${file}: creation time ${key.keyPacket.created.toISOString()}`);
  if (await key.getExpirationTime() !== Infinity) problem(`${file}: key expires`);
  if (key.isPrivate() && !key.isDecrypted()) problem(`${file}: secret key is passphrase-protected`);
  const sub = key.subkeys.map((s) => s.keyPacket.algorithm);
  const want = version === 6 ? [enums.publicKey.ed25519, enums.publicKey.x25519]
    : [enums.publicKey.eddsaLegacy, enums.publicKey.ecdh];
  if (key.keyPacket.algorithm !== want[0] || sub.length !== 1 || sub[0] !== want[1]) {
    problem(`${file}: algorithms ${key.keyPacket.algorithm}/${sub}`);
  }
  if (version === 4 && key.subkeys[0].keyPacket.publicParams.oid.getName() !== 'curve25519Legacy') {
    problem(`${file}: ECDH subkey is not on Curve25519Legacy`);
  }
}

// ---- the key files -------------------------------------------------------

const kr6 = blocks(read('keyring-v6.asc'));
if (kr6.length !== 2) problem(`keyring-v6.asc: ${kr6.length} blocks, want 2`);
else {
  if (kr6[0].headers.length || kr6[0].crc) problem('keyring-v6.asc: block 1 has armor headers or a CRC line');
  if (!kr6[1].headers.some((h) => h.startsWith('Comment: ')) || !kr6[1].crc) {
    problem('keyring-v6.asc: block 2 lacks the Comment header or the CRC line');
  } else checkCrc('keyring-v6.asc', kr6[1]);
  if (kr6[1].lines.slice(0, -1).some((l) => l.length !== 64)) problem('keyring-v6.asc: block 2 lines are not 64 columns');
}
const keys6 = await privateKeys('keyring-v6.asc');
const one = await privateKeys('keyring-v6-oneblock.asc');
if (keys6.length !== 2) problem(`keyring-v6.asc: ${keys6.length} keys`);
if (blocks(read('keyring-v6-oneblock.asc')).length !== 1 || one.length !== 2) problem('keyring-v6-oneblock.asc: want 2 keys in 1 block');
const fprs = (ks) => ks.map((k) => k.getFingerprint()).join(' ');
if (fprs(one) !== fprs(keys6)) problem('keyring-v6-oneblock.asc holds other keys than keyring-v6.asc');
for (const k of keys6) await checkKey('keyring-v6.asc', k, 6);
if (keys6.length === 2) {
  if (keys6[0].users.length !== 0) problem('keyring-v6.asc: key 1 has a user ID');
  if (keys6[1].users.length !== 1) problem('keyring-v6.asc: key 2 does not have exactly one user ID');
}
const certBlocks = blocks(read('cert-v6.asc'));
const certs6 = [];
for (const b of certBlocks) certs6.push(...await openpgp.readKeys({ armoredKeys: b.text }));
if (certBlocks.length !== 2 || certs6.some((c) => c.isPrivate()) || fprs(certs6) !== fprs(keys6)) {
  problem('cert-v6.asc: want the two public certificates of keyring-v6.asc in two blocks');
}
const keys4 = await privateKeys('keyring-v4.asc');
const kr4 = blocks(read('keyring-v4.asc'));
if (keys4.length !== 1 || kr4.length !== 1 || !kr4[0].crc) problem('keyring-v4.asc: want one key in one block with a CRC line');
else {
  checkCrc('keyring-v4.asc', kr4[0]);
  await checkKey('keyring-v4.asc', keys4[0], 4);
}
const c4 = blocks(read('cert-v4.asc'));
const certs4 = c4.length === 1 ? await openpgp.readKeys({ armoredKeys: c4[0].text }) : [];
if (!c4.length || !c4[0].crc || certs4.length !== 1 || certs4[0].isPrivate() || fprs(certs4) !== fprs(keys4)) {
  problem('cert-v4.asc: want the certificate of keyring-v4.asc in one block with a CRC line');
} else checkCrc('cert-v4.asc', c4[0]);
// RFC 9580 A.3 / A.4 fingerprints as printed in the RFC.
const a4 = await privateKeys('rfc9580-a4-secret.asc');
const a3 = await openpgp.readKey({ armoredKey: read('rfc9580-a3-cert.asc') });
const A_FPRS = 'cb186c4f0609a697e4d52dfa6c722b0c1f1e27c18a56708f6525ec27bad9acc9 '
  + '12c83f1e706f6308fe151a417743a1f033790e93e9978488d1db378da9930885';
for (const [name, k] of [['rfc9580-a4-secret.asc', a4[0]], ['rfc9580-a3-cert.asc', a3]]) {
  if (!k || `${k.getFingerprint()} ${k.subkeys[0].getFingerprint()}` !== A_FPRS) problem(`${name}: not the RFC 9580 sample key`);
}

// ---- vectors -------------------------------------------------------------

const vlines = read('vectors.tsv').split('\n');
const nlines = read('vectors-notes.tsv').split('\n');
if (vlines[0] !== 'name\tkeyring\tinput\texpected') problem('vectors.tsv: header');
if (nlines[0] !== 'name\tnote') problem('vectors-notes.tsv: header');
const rows = vlines.slice(1).filter((l) => l !== '').map((l) => {
  const f = l.split('\t');
  if (f.length !== 4) problem(`vectors.tsv: ${f.length} fields in ${f[0]}`);
  return { name: f[0], keyring: f[1], input: f[2], expected: f[3] };
});
const noteNames = nlines.slice(1).filter((l) => l !== '').map((l) => l.split('\t')[0]);
if (noteNames.join(' ') !== rows.map((r) => r.name).join(' ')) problem('vectors-notes.tsv does not list the rows of vectors.tsv in order');
if (new Set(rows.map((r) => r.name)).size !== rows.length) problem('vectors.tsv: duplicate names');

const keyrings = new Map();
async function keyringKeys(file) {
  if (!keyrings.has(file)) keyrings.set(file, await privateKeys(file));
  return keyrings.get(file);
}

function strictBase64(s) {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) return null;
  return Buffer.from(s, 'base64');
}

// Decrypt one row with OpenPGP.js: { ok: token } or { error: why }.
async function decryptRow(r) {
  if (!r.input.startsWith('openpgp:')) return { error: 'no prefix' };
  const bin = strictBase64(r.input.slice(8));
  if (bin === null) return { error: 'base64 (checked here)' };
  try {
    const message = await openpgp.readMessage({ binaryMessage: bin });
    const { data } = await openpgp.decrypt({
      message, decryptionKeys: await keyringKeys(r.keyring), format: 'binary',
    });
    let text;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(data);
    } catch {
      return { error: 'utf8 (checked here)' };
    }
    if (text.includes('\0')) return { error: 'utf8 (NUL, checked here)' };
    text = text.trim();
    return text === '' ? { error: 'empty (checked here)' } : { ok: text };
  } catch (e) {
    return { error: `OpenPGP.js: ${e.message.split('\n')[0]}` };
  }
}

// core_ rows: exactly 687 octets, c1 5d <v6 PKESK to a v6 X25519 subkey of
// the keyring> d2 c1 8d <SEIPD 2 7 2 7>.
async function checkCoreShape(r) {
  const b = strictBase64(r.input.slice(8));
  if (!b || b.length !== 687 || b[0] !== 0xc1 || b[1] !== 0x5d || b[95] !== 0xd2 || b[96] !== 0xc1 || b[97] !== 0x8d) {
    return 'not 687 octets c1 5d ... d2 c1 8d';
  }
  if (b[2] !== 6 || b[3] !== 33 || b[4] !== 6 || b[37] !== 25) return 'PKESK is not v6 to a v6 X25519 key';
  const fpr = b.subarray(5, 37).toString('hex');
  const subs = (await keyringKeys(r.keyring)).map((k) => k.subkeys[0].getFingerprint());
  if (!subs.includes(fpr)) return 'PKESK addresses no X25519 subkey of the keyring';
  if (b[98] !== 2 || b[99] !== 7 || b[100] !== 2 || b[101] !== 7) return 'SEIPD is not 2 7 2 7';
  return null;
}

const pass = Object.fromEntries(GROUPS.map((g) => [g, [0, 0]]));
const groupOf = (name) => GROUPS.filter((g) => name.startsWith(g)).sort((a, b) => b.length - a.length)[0];
for (const r of rows) {
  const g = groupOf(r.name);
  if (!g) {
    problem(`${r.name}: no group`);
    continue;
  }
  pass[g][1]++;
  const got = await decryptRow(r);
  let bad = null;
  if (r.expected.startsWith('ERROR:')) {
    if (got.ok !== undefined) bad = `decrypted to ${JSON.stringify(got.ok)}, want ${r.expected}`;
    else if (/checked here/.test(got.error) && !got.error.startsWith(r.expected.slice(6))) {
      bad = `rejected as ${got.error}, want ${r.expected}`;
    }
  } else if (got.ok !== r.expected) {
    bad = got.ok !== undefined ? `decrypted to ${JSON.stringify(got.ok)}` : `rejected: ${got.error}`;
  }
  if (!bad && g === 'core_') bad = await checkCoreShape(r);
  if (!bad && r.name === 'rfc9580_a8_x25519_aead_ocb') {
    const { data } = await openpgp.unarmor(read('rfc9580-a8-message.asc'));
    if (Buffer.compare(Buffer.from(data), strictBase64(r.input.slice(8))) !== 0) bad = 'input is not the binary of rfc9580-a8-message.asc';
  }
  if (verbose) process.stdout.write(`  ${r.name.padEnd(42)} ${got.ok !== undefined ? 'ok' : got.error}\n`);
  if (bad) problem(`${r.name}: ${bad}`);
  else pass[g][0]++;
}

for (const g of GROUPS) process.stdout.write(`  openpgp.js  ${g.padEnd(9)} ${pass[g][0]}/${pass[g][1]}\n`);
for (const p of problems) process.stdout.write(`  PROBLEM ${p}\n`);
process.stdout.write(`verify.mjs: ${rows.length} rows, ${problems.length} problems\n`);
process.exit(problems.length ? 1 : 0);
