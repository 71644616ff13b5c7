// A provincial platform's journey through the carbon-account gateway, in Node.js (18 or later) with @grpc/grpc-js and
// @grpc/proto-loader, from protos/ and docs/ alone.
//
//   node examples/node/journey.mjs --gateway 127.0.0.1:18050 --data-dir data
//
// The protos are loaded at run time from protos/ (keepCase: the proto's own snake_case names; int64 as strings; enums
// by name). The batch signature comes from ./signing.mjs (docs/contract/signing.md). Credentials are what `carbon up`
// writes into its data folder (examples/README.md).
//
// The journey: open one person's accounts in two regions, record consent, a data partner submits a signed batch, read
// the balance, redeem a reward, move points to the other region with the resident's authorization. Each step checks
// what the contract (docs/contract/README.md) promises; the script exits 1 at the first that does not hold.

import { randomBytes, randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

import { canonicalBytes, sign } from "./signing.mjs";

const SOURCE = "330000"; // Zhejiang
const TARGET = "110000"; // Beijing
const REWARD = "transit-topup";
const TRANSFER_POINTS = 400;
const EARNED = 500;
// Final states of a cross-region transfer (docs/contract/README.md, "Cross-region operations").
const FINAL_TRANSFER_STATES = ["CROSS_REGION_TRANSFER_STATE_COMMITTED", "CROSS_REGION_TRANSFER_STATE_RELEASED"];

const { values: args } = parseArgs({
  options: {
    gateway: { type: "string" },
    "data-dir": { type: "string" },
    protos: { type: "string", default: fileURLToPath(new URL("../../protos", import.meta.url)) },
  },
});
if (!args.gateway || !args["data-dir"]) {
  console.error("usage: node examples/node/journey.mjs --gateway HOST:PORT --data-dir DIR [--protos DIR]");
  process.exit(2);
}
const dataDir = resolve(args["data-dir"]);
const run = `js${randomBytes(4).toString("hex")}`; // request ids of their own on every run

function check(condition, what) {
  if (!condition) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
  console.log(`ok  ${what}`);
}

// --- the services, from protos/ -------------------------------------------------------------------------------------

const files = ["identity", "ingest", "ledger", "rewards", "gateway"].map((name) => `carbon/${name}/v1/${name}_service.proto`);
const definition = protoLoader.loadSync(files, {
  includeDirs: [args.protos],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const loaded = grpc.loadPackageDefinition(definition);
const credentials = grpc.credentials.createInsecure();
const stub = (Service) => new Service(args.gateway, credentials);
const services = {
  identity: stub(loaded.carbon.identity.v1.IdentityService),
  ingest: stub(loaded.carbon.ingest.v1.IngestService),
  ledger: stub(loaded.carbon.ledger.v1.LedgerService),
  rewards: stub(loaded.carbon.rewards.v1.RewardsService),
  gateway: stub(loaded.carbon.gateway.v1.GatewayService),
};

// One unary call with a deadline, as a promise. Calls that name no account name their region in x-carbon-region.
function call(key, service, method, request, region = "") {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${key}`);
  if (region) metadata.set("x-carbon-region", region);
  const deadline = new Date(Date.now() + 60_000);
  return new Promise((done, fail) => {
    services[service][method](request, metadata, { deadline }, (error, response) =>
      error ? fail(error) : done(response),
    );
  });
}

// --- the ErrorInfo of a refusal (docs/contract/README.md, "Errors") --------------------------------------------------

// The length-delimited fields of a protobuf message: [[field number, bytes], ...] (other wire types skipped).
function lengthDelimited(buffer) {
  const fields = [];
  let offset = 0;
  const varint = () => {
    let value = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const byte = buffer[offset++];
      value |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return value;
    }
  };
  while (offset < buffer.length) {
    const key = varint();
    const wireType = Number(key & 7n);
    if (wireType === 2) {
      const length = Number(varint());
      fields.push([Number(key >> 3n), buffer.subarray(offset, offset + length)]);
      offset += length;
    } else if (wireType === 0) varint();
    else if (wireType === 1) offset += 8;
    else if (wireType === 5) offset += 4;
    else throw new Error(`unexpected wire type ${wireType}`);
  }
  return fields;
}

// google.rpc.Status.details (3) holds Anys: type_url (1), value (2); ErrorInfo.reason is field 1.
function reasonOf(error) {
  const [details] = error.metadata?.get("grpc-status-details-bin") ?? [];
  if (!details) return "";
  for (const [number, any] of lengthDelimited(details)) {
    if (number !== 3) continue;
    const parts = Object.fromEntries(lengthDelimited(any));
    if (parts[1]?.toString().endsWith("/google.rpc.ErrorInfo")) {
      const reason = lengthDelimited(parts[2]).find(([field]) => field === 1);
      return reason ? reason[1].toString() : "";
    }
  }
  return "";
}

// --- values ------------------------------------------------------------------------------------------------------

// A resident ID number (GB 11643) with a valid check character: Beijing Chaoyang, born 1990, random serial.
function idNumber() {
  const first17 = `110105${19900101 + randomInt(28)}${String(randomInt(1000)).padStart(3, "0")}`;
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const total = [...first17].reduce((sum, digit, index) => sum + Number(digit) * weights[index], 0);
  return first17 + "10X98765432"[total % 11];
}

// A well-formed account number of a region (region code, 9 digits, Luhn check digit).
function accountNumber(region, nine) {
  const payload = region + nine;
  const total = [...payload].reverse().reduce((sum, digit, index) => {
    const value = Number(digit) * (index % 2 === 0 ? 2 : 1);
    return sum + (value > 9 ? value - 9 : value);
  }, 0);
  return payload + String((10 - (total % 10)) % 10);
}

// A Timestamp both ways: {seconds, nanos} for the call, RFC 3339 for the signature (signing.mjs reads the JSON form).
// The next whole second: never before the account's opening a moment ago (an event from before an account existed
// does not score), and well within the future tolerance of five minutes.
function nextSecond() {
  const at = new Date(Math.ceil((Date.now() + 1) / 1000) * 1000);
  return { message: { seconds: String(at.getTime() / 1000), nanos: 0 }, json: at.toISOString() };
}

// --- the journey ---------------------------------------------------------------------------------------------------

const platformKey = readFileSync(join(dataDir, "gateway-platform-key"), "utf8").trim();
const partnerKey = readFileSync(join(dataDir, "gateway-partner-key"), "utf8").trim();
const balance = async (account) =>
  (await call(platformKey, "ledger", "GetBalance", { account })).balance;

async function openPerson() {
  const person = idNumber();
  const phone = `139${String(randomInt(10 ** 8)).padStart(8, "0")}`;
  const accounts = {};
  for (const region of [SOURCE, TARGET]) {
    const opened = await call(
      platformKey,
      "identity",
      "OpenAccount",
      {
        request_id: `${run}-open-${region}`,
        channel: "CHANNEL_INTERNET_PLATFORM",
        name: "李四",
        id_number: person,
        phone_number: phone,
        binding: { platform: "alipay", platform_user_id: `2088-${run}` },
      },
      region,
    );
    accounts[region] = opened.account.account_number;
  }
  check(accounts[SOURCE].startsWith(SOURCE) && accounts[TARGET].startsWith(TARGET), "accounts opened in both regions");
  return accounts;
}

// EV charging data scores from now on (a consent cannot reach back before the account was opened); sharing with another
// region's platform (PIPL art. 23) is granted on both accounts before points move between them.
async function grantConsents(accounts) {
  const grants = [
    [accounts[SOURCE], "DATA_CATEGORY_EV_CHARGING"],
    [accounts[SOURCE], "DATA_CATEGORY_CROSS_REGION_SHARING"],
    [accounts[TARGET], "DATA_CATEGORY_CROSS_REGION_SHARING"],
  ];
  for (const [index, [account_number, category]] of grants.entries()) {
    await call(platformKey, "identity", "GrantConsent", {
      request_id: `${run}-consent-${index}`,
      account_number,
      category,
      channel: "CHANNEL_INTERNET_PLATFORM",
      recorded_by: "alipay",
    });
  }
  check(true, `${grants.length} consents granted`);
}

// One charging session of 100 kWh today (the daily cap; 5 points a kWh): 500 points. Its evidence_ref, the
// charger's session id, is what identifies the real-world activity nationwide (one session earns once).
async function submitSignedBatch(account) {
  const secret = JSON.parse(readFileSync(join(dataDir, "demo-partner-secrets.json"), "utf8"))[SOURCE];
  const events = [
    {
      event_id: `${run}-charge-1`,
      account: { account_number: account },
      behaviour: "ev_charging_kwh",
      quantity_milli: "100000",
      occurred_at: nextSecond(),
      region_code: SOURCE,
      evidence_ref: `charger-7:session-${run}`,
    },
  ];
  const batch = { partner_id: "demo-partner", batch_id: `${run}-1`, key_id: secret.key_id };
  const forSigning = { ...batch, events: events.map((event) => ({ ...event, occurred_at: event.occurred_at.json })) };
  const request = {
    ...batch,
    events: events.map((event) => ({ ...event, occurred_at: event.occurred_at.message })),
    signature: sign(secret.secret, canonicalBytes(forSigning)),
  };
  const { results } = await call(partnerKey, "ingest", "SubmitEvents", request, SOURCE);
  const outcomes = results.map((result) => result.outcome);
  check(
    outcomes.length === 1 && outcomes.every((outcome) => outcome === "EVENT_OUTCOME_ACCEPTED"),
    `signed batch accepted (${outcomes})`,
  );
}

// One unit of a reward; returns its price (Reward.price_points is the price of one unit).
async function redeem(account) {
  const { reward } = await call(platformKey, "rewards", "GetReward", { reward_id: REWARD }, SOURCE);
  const { redemption } = await call(platformKey, "rewards", "Redeem", {
    request_id: `${run}-redeem`,
    account_number: account,
    reward_id: REWARD,
  });
  check(redemption.vouchers.length === 1, `redeemed ${REWARD} for ${reward.price_points} points: one voucher`);
  return Number(reward.price_points);
}

// A cross-region transfer with the resident's authorization; repeated until its state is final.
async function movePoints(accounts) {
  const { authorization } = await call(platformKey, "identity", "IssueResidentAuthorization", {
    request_id: `${run}-move`,
    account_number: accounts[SOURCE],
    operation: "RESIDENT_OPERATION_CROSS_REGION_TRANSFER",
    amount_points: String(TRANSFER_POINTS),
    to_account: accounts[TARGET],
  });
  const request = {
    transfer_id: `${run}-move`,
    from_account: accounts[SOURCE],
    to_account: accounts[TARGET],
    amount_points: String(TRANSFER_POINTS),
    resident_authorization: authorization,
  };
  const deadline = Date.now() + 120_000;
  let transfer;
  for (;;) {
    ({ transfer } = await call(platformKey, "gateway", "CreateCrossRegionTransfer", request));
    if (FINAL_TRANSFER_STATES.includes(transfer.state) || Date.now() > deadline) break;
    await new Promise((wake) => setTimeout(wake, 1000)); // in progress: the same request again drives it on
  }
  check(
    transfer.state === "CROSS_REGION_TRANSFER_STATE_COMMITTED",
    `moved ${TRANSFER_POINTS} points across regions (${transfer.state})`,
  );
}

// A well-formed number nobody opened: NOT_FOUND UNKNOWN_ACCOUNT, not a zero balance.
async function unknownAccountIsNotFound(known) {
  const nine = known.slice(6, 15) === "000000000" ? "000000001" : "000000000";
  try {
    await balance(accountNumber(SOURCE, nine));
  } catch (error) {
    const reason = reasonOf(error);
    check(error.code === grpc.status.NOT_FOUND && reason === "UNKNOWN_ACCOUNT", `unknown account: ${reason}`);
    return;
  }
  check(false, "an unknown account is refused");
}

const accounts = await openPerson();
await grantConsents(accounts);
await submitSignedBatch(accounts[SOURCE]);
check(Number((await balance(accounts[SOURCE])).available_points) === EARNED, `balance ${EARNED} points`);
const price = await redeem(accounts[SOURCE]);
await movePoints(accounts);
const left = Number((await balance(accounts[SOURCE])).available_points);
check(left === EARNED - price - TRANSFER_POINTS, `source balance ${left}`);
check(Number((await balance(accounts[TARGET])).available_points) === TRANSFER_POINTS, "target balance");
await unknownAccountIsNotFound(accounts[SOURCE]);
for (const client of Object.values(services)) client.close();
console.log("journey complete");
