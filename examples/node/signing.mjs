// Partner batch signatures for carbon.ingest.v1, in plain Node.js (18 or later, no dependencies), written from
// docs/contract/signing.md alone.
//
//   node examples/node/signing.mjs [path/to/signing-vectors.json]
// checks every known-answer vector (default: docs/contract/signing-vectors.json) and exits 1 if any differs.
//
//   import { canonicalBytes, sign } from "./signing.mjs";
//   request.keyId = "k1";
//   request.signature = sign(secret, canonicalBytes(request));
// `request` is a SubmitEventsRequest as a plain object in the protobuf JSON mapping: camelCase or the proto's own
// snake_case names, 64-bit integers as strings (or numbers below 2^53), timestamps as RFC 3339 strings; a oneof
// member is set when its key is present.

import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

const TAG = Buffer.from("carbon.ingest.v1/batch\n", "utf8");
const KIND = { none: 0, accountNumber: 1, binding: 2, phoneNumber: 3 };

function u8(value) {
  return Buffer.from([value]);
}

function u32(value) {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  return bytes;
}

function i64(value) {
  const bytes = Buffer.alloc(8);
  bytes.writeBigInt64BE(BigInt(value ?? 0)); // BigInt: a Number loses precision beyond 2^53
  return bytes;
}

function str(value) {
  const raw = Buffer.from(value ?? "", "utf8");
  return Buffer.concat([u32(raw.length), raw]); // the length counts UTF-8 bytes, not characters
}

// A field by its JSON name or its proto name (the JSON mapping accepts both).
function field(object, jsonName, protoName) {
  if (object == null) return undefined;
  return object[jsonName] !== undefined ? object[jsonName] : object[protoName];
}

// Days since 1970-01-01 of a proleptic Gregorian date (exact for any year, unlike Date.UTC with years below 100).
function daysFromCivil(year, month, day) {
  const y = month <= 2 ? year - 1n : year;
  const era = (y >= 0n ? y : y - 399n) / 400n;
  const yearOfEra = y - era * 400n;
  const m = month > 2 ? month - 3n : month + 9n;
  const dayOfYear = (153n * m + 2n) / 5n + day - 1n;
  const dayOfEra = yearOfEra * 365n + yearOfEra / 4n - yearOfEra / 100n + dayOfYear;
  return era * 146097n + dayOfEra - 719468n;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

// [seconds, nanos] of a google.protobuf.Timestamp in RFC 3339; an unset one is [0, 0].
function timestamp(value) {
  if (value == null) return [0n, 0];
  const match = RFC3339.exec(value);
  if (!match) throw new Error(`not an RFC 3339 timestamp: ${value}`);
  const [, year, month, day, hour, minute, second, fraction = "", sign, offsetHours, offsetMinutes] = match;
  let seconds = daysFromCivil(BigInt(year), BigInt(month), BigInt(day)) * 86400n;
  seconds += BigInt(hour) * 3600n + BigInt(minute) * 60n + BigInt(second);
  if (sign) {
    const offset = BigInt(offsetHours) * 3600n + BigInt(offsetMinutes) * 60n;
    seconds += sign === "+" ? -offset : offset;
  }
  return [seconds, Number(fraction.padEnd(9, "0"))];
}

// The kind byte and the parts of an AccountRef: which member of its `ref` oneof is present, not whether it is empty.
function account(ref) {
  const number = field(ref, "accountNumber", "account_number");
  if (number !== undefined) return Buffer.concat([u8(KIND.accountNumber), str(number)]);
  const binding = field(ref, "binding", "binding");
  if (binding !== undefined && binding !== null) {
    const platform = field(binding, "platform", "platform");
    const user = field(binding, "platformUserId", "platform_user_id");
    return Buffer.concat([u8(KIND.binding), str(platform), str(user)]);
  }
  const phone = field(ref, "phoneNumber", "phone_number");
  if (phone !== undefined) return Buffer.concat([u8(KIND.phoneNumber), str(phone)]);
  return u8(KIND.none); // no reference, or an AccountRef with no member set
}

function event(message) {
  const [seconds, nanos] = timestamp(field(message, "occurredAt", "occurred_at"));
  return Buffer.concat([
    str(field(message, "eventId", "event_id")),
    account(field(message, "account", "account")),
    str(field(message, "behaviour", "behaviour")),
    i64(field(message, "quantityMilli", "quantity_milli")),
    i64(seconds),
    u32(nanos),
    str(field(message, "regionCode", "region_code")),
    str(field(message, "evidenceRef", "evidence_ref")),
    str(field(message, "tier", "tier")),
  ]);
}

// The canonical bytes of a SubmitEventsRequest's partner_id, batch_id and events (docs/contract/signing.md).
export function canonicalBytes(request) {
  const events = field(request, "events", "events") ?? [];
  return Buffer.concat([
    TAG,
    str(field(request, "partnerId", "partner_id")),
    str(field(request, "batchId", "batch_id")),
    u32(events.length),
    ...events.map(event),
  ]);
}

// Lowercase hex of HMAC-SHA256 keyed with the secret's UTF-8 bytes (the secret as issued: do not base64-decode it).
export function sign(secret, canonical) {
  return createHmac("sha256", Buffer.from(secret, "utf8")).update(canonical).digest("hex");
}

function firstDifference(a, b) {
  const length = Math.min(a.length, b.length);
  for (let index = 0; index < length; index += 1) if (a[index] !== b[index]) return index;
  return length;
}

// Checks every vector of the file; returns the names of those this implementation does not reproduce.
export function checkVectors(path) {
  const { vectors } = JSON.parse(readFileSync(path, "utf8"));
  const failed = [];
  for (const vector of vectors) {
    const canonical = canonicalBytes(vector.request);
    const expected = Buffer.from(vector.canonical_hex, "hex");
    const signature = sign(vector.secret, canonical);
    if (!canonical.equals(expected)) {
      failed.push(vector.name);
      console.log(`FAIL ${vector.name}: canonical bytes differ from byte ${firstDifference(canonical, expected)} on`);
    } else if (signature !== vector.signature) {
      failed.push(vector.name);
      console.log(`FAIL ${vector.name}: signature ${signature}, expected ${vector.signature}`);
    } else {
      console.log(`ok   ${vector.name}`);
    }
  }
  console.log(`${vectors.length - failed.length} of ${vectors.length} vectors reproduced`);
  return failed;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const path = process.argv[2] ?? fileURLToPath(new URL("../../docs/contract/signing-vectors.json", import.meta.url));
  process.exitCode = checkVectors(path).length ? 1 : 0;
}
