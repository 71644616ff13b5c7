// The typed client of the ops API: openapi-fetch over the types openapi-typescript generates from /openapi.json
// (openapi.d.ts, checked in CI against the document), so a page calling a path, parameter or field the API does not
// have fails the type check.
import createClient from "./vendor/openapi-fetch.mjs";

const TOKEN_KEY = "carbon-ops-token";

/** @typedef {import("./openapi").components["schemas"]} Schemas */

export const session = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  /** @type {Schemas["Me"] | null} */
  me: null,
};

/** @type {import("openapi-fetch").Client<import("./openapi").paths>} */
export const api = createClient({ baseUrl: location.origin });

api.use({
  onRequest({ request }) {
    if (session.token) request.headers.set("Authorization", `Bearer ${session.token}`);
    // A fresh id per action: it is the idempotency key downstream, so a retried click cannot act twice.
    if (request.method !== "GET") request.headers.set("X-Request-Id", newRequestId());
    return request;
  },
});

/** 128 random bits in hex; crypto.randomUUID exists only on https or localhost, a centre's LAN address is neither. */
function newRequestId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A refusal or failure as the API described it (RFC 9457 problem details). */
export class ProblemError extends Error {
  /** @param {number} status @param {any} problem */
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.reason = (problem && problem.reason) || "";
  }
}

/**
 * The data of a response, or a ProblemError.
 * @template T
 * @param {Promise<{data?: T, error?: any, response: Response}>} pending
 * @returns {Promise<T>}
 */
export async function must(pending) {
  const { data, error, response } = await pending;
  if (response.status === 401 && session.me) {
    // The token expired or was revoked while the page was open: back to the sign-in page.
    forget();
    location.hash = "";
    location.reload();
  }
  if (!response.ok || data === undefined) throw new ProblemError(response.status, error);
  return data;
}

/** @param {string} token */
export function remember(token) {
  session.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forget() {
  session.token = "";
  session.me = null;
  sessionStorage.removeItem(TOKEN_KEY);
}
