// Build one Web Push request with the web-push library (its own
// aes128gcm encryption through http_ece and its own ES256 VAPID JWT
// through jws), an implementation independent of proxyd's and of the
// fake server's, for test_fake_webpush.py:
//
//   node request.mjs < spec.json
//
// spec: {"endpoint", "p256dh", "auth", "payload", "subject",
//        "vapid_public", "vapid_private", "ttl", "urgency"}
// (keys base64url as web-push takes them; vapid_private is the raw
// 32-byte scalar). Prints {"method", "endpoint", "headers", "body_b64"}:
// the request is not sent, the test sends it.
import { readFileSync } from 'node:fs';
import webpush from 'web-push';

const spec = JSON.parse(readFileSync(0, 'utf8'));
const details = webpush.generateRequestDetails(
  { endpoint: spec.endpoint, keys: { p256dh: spec.p256dh, auth: spec.auth } },
  spec.payload,
  {
    vapidDetails: {
      subject: spec.subject,
      publicKey: spec.vapid_public,
      privateKey: spec.vapid_private,
    },
    TTL: spec.ttl,
    urgency: spec.urgency,
    contentEncoding: 'aes128gcm',
  },
);
process.stdout.write(JSON.stringify({
  method: details.method,
  endpoint: details.endpoint,
  headers: details.headers,
  body_b64: Buffer.from(details.body).toString('base64'),
}) + '\n');
