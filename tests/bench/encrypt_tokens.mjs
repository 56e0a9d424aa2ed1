// encrypt_tokens.mjs: a pool of random APNs device tokens, each encrypted
// the way chatmail core encrypts a device token for the notifiers service,
// for the proxyd benchmark (tests/bench/README.md, "proxyd").
//
//   node encrypt_tokens.mjs --modules DIR --cert CERT.asc --count N
//                           --out POOL [--plain PLAIN]
//
// DIR is a directory whose node_modules holds OpenPGP.js 6 (npm package
// openpgp@6): run-proxyd-bench.sh installs it once into a cache directory.
// CERT.asc is tests/data/openpgp/cert-v6.asc or the like; the
// tokens are encrypted to its first certificate, as every core_* test
// vector for key 1.
//
// Each token is 64 random lower-case hex digits (32 octets, an APNs device
// token).  It is encrypted exactly as the test data README's "How this
// data was made" says: padded with spaces to 512 octets, a binary literal
// packet with an empty file name and date 0, a v6 PKESK to the X25519
// subkey and a v2 SEIPD with AES-128, OCB and chunk size octet 7, no
// compression; then every top-level packet is re-framed with a fixed-length
// header (OpenPGP.js streams SEIPD with partial lengths; rPGP, which core
// uses, does not).  Every message must come out 687 octets starting
// c1 5d ... d2 c1 8d, or the script fails: that is the shape core sends.
//
// POOL gets one "openpgp:<base64>" per line, N lines; PLAIN (optional) the
// tokens in the same order.  stdout gets one line:
//
//   encrypt-tokens tokens=N secs=S openpgp_js=VERSION digest=HEX
//
// digest is the sum modulo 2^64 of the FNV-1a 64 hashes of the distinct
// tokens' hex strings: apns-sink prints the same sum over the device
// tokens it received, so the two match when every token got through.
//
// Exit status 0, 1 on failure, 2 on bad usage.

import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { reframeMessage } from "../data/openpgp/generate/packets.mjs";

const PAD_OCTETS = 512;
const MESSAGE_OCTETS = 687;		// README: "What chatmail core sends"
const BATCH = 64;			// encryptions awaited together

function usage(msg) {
	if (msg)
		console.error(`encrypt-tokens: ${msg}`);
	console.error("usage: node encrypt_tokens.mjs --modules DIR " +
	    "--cert CERT.asc --count N --out POOL [--plain PLAIN]");
	process.exit(2);
}

function parseArgs(argv) {
	const a = {};

	for (let i = 0; i < argv.length; i += 2) {
		const k = argv[i], v = argv[i + 1];

		if (!k.startsWith("--") || v === undefined)
			usage(`bad argument ${k}`);
		a[k.slice(2)] = v;
	}
	for (const k of ["modules", "cert", "count", "out"])
		if (a[k] === undefined)
			usage(`--${k} is required`);
	a.count = Number(a.count);
	if (!Number.isInteger(a.count) || a.count < 1 || a.count > 10000000)
		usage("--count: want an integer in 1..10000000");
	return a;
}

const FNV_OFFSET = 0xcbf29ce484222325n, FNV_PRIME = 0x100000001b3n;
const MASK64 = (1n << 64n) - 1n;

function fnv1a64(s) {
	let h = FNV_OFFSET;

	for (let i = 0; i < s.length; i++)
		h = ((h ^ BigInt(s.charCodeAt(i))) * FNV_PRIME) & MASK64;
	return h;
}

async function main() {
	const a = parseArgs(process.argv.slice(2));
	const require = createRequire(join(a.modules, "package.json"));
	const openpgp = require("openpgp");
	const { enums } = openpgp;
	const armored = readFileSync(a.cert, "utf8");
	// The first armored block: key 1, as the core_*_k1 vectors.
	const first = armored.slice(0, armored.indexOf("-----END PGP PUBLIC " +
	    "KEY BLOCK-----") + "-----END PGP PUBLIC KEY BLOCK-----".length);
	const key = await openpgp.readKey({ armoredKey: first });
	const config = {
		aeadProtect: true,
		preferredAEADAlgorithm: enums.aead.ocb,
		preferredSymmetricAlgorithm: enums.symmetric.aes128,
		aeadChunkSizeByte: 7,
		preferredCompressionAlgorithm:
		    enums.compression.uncompressed,
	};
	const t0 = process.hrtime.bigint();
	const tokens = [], lines = [];
	let digest = 0n;

	// Distinct by construction of 256 random bits; checked anyway, since
	// the bench counts distinct tokens at the sink.
	const seen = new Set();
	while (tokens.length < a.count) {
		const t = randomBytes(32).toString("hex");

		if (!seen.has(t)) {
			seen.add(t);
			tokens.push(t);
			digest = (digest + fnv1a64(t)) & MASK64;
		}
	}
	for (let i = 0; i < tokens.length; i += BATCH) {
		const batch = tokens.slice(i, i + BATCH).map(async (t) => {
			const padded = Buffer.alloc(PAD_OCTETS, 0x20);

			padded.write(t, "ascii");
			const message = await openpgp.createMessage({
			    binary: new Uint8Array(padded), filename: "",
			    date: new Date(0), format: "binary" });
			const enc = await openpgp.encrypt({ message,
			    encryptionKeys: key, format: "binary", config });
			const bin = reframeMessage(enc);

			if (bin.length !== MESSAGE_OCTETS || bin[0] !== 0xc1 ||
			    bin[1] !== 0x5d || bin[95] !== 0xd2 ||
			    bin[96] !== 0xc1 || bin[97] !== 0x8d)
				throw new Error("message not shaped as " +
				    `core's: ${bin.length} octets`);
			return "openpgp:" + bin.toString("base64");
		});
		lines.push(...await Promise.all(batch));
	}
	writeFileSync(a.out, lines.join("\n") + "\n");
	if (a.plain !== undefined)
		writeFileSync(a.plain, tokens.join("\n") + "\n");
	const secs = Number(process.hrtime.bigint() - t0) / 1e9;
	const version = openpgp.config.versionString
	    .replace(/^OpenPGP\.js v?/, "");
	console.log(`encrypt-tokens tokens=${tokens.length} ` +
	    `secs=${secs.toFixed(2)} openpgp_js=${version} ` +
	    `digest=${digest.toString(16).padStart(16, "0")}`);
}

main().catch((e) => {
	console.error(`encrypt-tokens: ${e.stack || e}`);
	process.exit(1);
});
