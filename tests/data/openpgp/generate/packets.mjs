// OpenPGP packet framing shared by the scripts that make or check
// chatmail-shaped messages with OpenPGP.js: the test-data generator and
// checker (this folder), the e2e tests' encrypt.mjs and the benchmark's
// encrypt_tokens.mjs. OpenPGP.js streams the SEIPD packet with partial
// body lengths; rPGP, which chatmail core uses, writes fixed lengths, so
// these scripts re-frame what OpenPGP.js writes (RFC 9580 section 4.2).
// No dependencies: plain Node.js Buffers.

// Top-level packets of a binary message: [{tag, body, partial}], with
// partial body parts joined into one body. OpenPGP-format headers only
// (OpenPGP.js writes no legacy ones); throws on anything else or on a
// length that runs past the end.
export function splitPackets(bytes) {
  const out = [];
  let i = 0;
  while (i < bytes.length) {
    const h = bytes[i++];
    if ((h & 0xc0) !== 0xc0) throw new Error(`packet header 0x${h.toString(16)}`);
    const parts = [];
    let partial = false;
    for (;;) {
      if (i >= bytes.length) throw new Error('packet header cut short');
      const o1 = bytes[i++];
      let len;
      let more = false;
      if (o1 < 192) {
        len = o1;
      } else if (o1 < 224) {
        len = ((o1 - 192) << 8) + bytes[i++] + 192;
      } else if (o1 === 255) {
        len = bytes.readUInt32BE(i);
        i += 4;
      } else {
        len = 1 << (o1 & 0x1f);
        more = true;
        partial = true;
      }
      if (i + len > bytes.length) throw new Error('packet runs past the end');
      parts.push(bytes.subarray(i, i + len));
      i += len;
      if (!more) break;
    }
    out.push({ tag: h & 0x3f, body: Buffer.concat(parts), partial });
  }
  return out;
}

// The OpenPGP-format header with a fixed length (1, 2 or 5 length
// octets) that rPGP writes.
export function fixedHeader(tag, len) {
  if (len < 192) return Buffer.from([0xc0 | tag, len]);
  if (len < 8384) {
    const l = len - 192;
    return Buffer.from([0xc0 | tag, (l >> 8) + 192, l & 0xff]);
  }
  const b = Buffer.alloc(6);
  b[0] = 0xc0 | tag;
  b[1] = 255;
  b.writeUInt32BE(len, 2);
  return b;
}

// One packet with a fixed-length header.
export const packet = (tag, body) => Buffer.concat([fixedHeader(tag, body.length), body]);

// Packets (as splitPackets gives them) written again with fixed-length
// headers, bodies kept octet for octet.
export const reframe = (pkts) => Buffer.concat(pkts.map((p) => packet(p.tag, p.body)));

// A whole binary message re-framed as chatmail core frames it.
export const reframeMessage = (bytes) => reframe(splitPackets(Buffer.from(bytes)));

// The CRC-24 of ASCII armor (RFC 9580 section 6.1).
export function crc24(bytes) {
  let crc = 0xb704ce;
  for (const b of bytes) {
    crc ^= b << 16;
    for (let k = 0; k < 8; k++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= 0x1864cfb;
    }
  }
  return crc & 0xffffff;
}
