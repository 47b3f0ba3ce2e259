// Processes for the dashboard tests: a real coordinator (`hippo server` with its HTTP
// dashboard), real workers and `hippo submit`, each ended by its own pid when the test ends.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createRequire } from "node:module";

export const HIPPO = process.env.HIPPO_BIN;
export const ARTIFACTS = process.env.HIPPO_ARTIFACTS ?? path.join(tmpdir(), "hippo-dashboard-artifacts");
mkdirSync(ARTIFACTS, { recursive: true });

/** playwright-core, installed by the build's `npm ci` of dashboard/web. */
export function playwright() {
  const require = createRequire(path.join(process.env.HIPPO_NODE_MODULES, "noop.js"));
  return require("playwright-core");
}

const children = new Set();
export function stopAll() {
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  children.clear();
}
process.on("exit", stopAll);

// Keeps a child's output, so that a wait can match lines printed before it began.
function record(child) {
  child.output = "";
  const onData = (chunk) => {
    child.output += chunk.toString();
    for (const waiter of child.waiters ?? []) waiter();
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  return child;
}

function waitForLine(child, pattern, what, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no line matching ${pattern} in ${timeoutMs} ms; output:\n${child.output}`)), timeoutMs);
    const check = () => {
      const match = child.output.match(pattern);
      if (match) {
        clearTimeout(timer);
        resolve(match);
      }
    };
    child.waiters = [...(child.waiters ?? []), check];
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}; output:\n${child.output}`));
    });
    check();
  });
}

// The token of each dashboard's origin, presented by api() (authentication is on by default).
const tokens = new Map();

/**
 * Starts `hippo server` with the dashboard; resolves { grpc, url, loginUrl, token, tokenFile,
 * dir, db, child }. Without `token` the server makes its own token file beside the database;
 * `loginUrl` is the URL it printed, which carries the token once (a browser opens it first).
 */
export async function startServer({ listen = "127.0.0.1:0", http = "127.0.0.1:0", token = "", args = [], dir = mkdtempSync(path.join(tmpdir(), "hippo-dash-")), startTimeoutMs = 30000 } = {}) {
  const db = path.join(dir, "hippo.db");
  const env = { ...process.env };
  if (token) env.HIPPO_TOKEN = token;
  else delete env.HIPPO_TOKEN;
  const child = record(spawn(HIPPO, ["server", "--listen", listen, "--db", db, "--http", http, ...args], { env, stdio: ["ignore", "pipe", "pipe"] }));
  children.add(child);
  const grpc = await waitForLine(child, /listening on [^\s]*?:(\d+)/, "hippo server", startTimeoutMs);
  const printed = await waitForLine(child, /dashboard at (https?:\/\/\S+)/, "hippo server", startTimeoutMs);
  const loginUrl = printed[1];
  const url = new URL(loginUrl);
  const serverToken = url.searchParams.get("token") ?? "";
  url.search = "";
  tokens.set(url.origin, serverToken);
  const tokenFile = token || args.includes("--insecure") ? "" : `${db}.token`;
  return { grpc: `127.0.0.1:${grpc[1]}`, url: url.href, loginUrl, token: serverToken, tokenFile, dir, db, child };
}

/** The environment of a client of `server`: the token file the server wrote, or its token. */
function clientEnv(server) {
  const env = { ...process.env };
  delete env.HIPPO_TOKEN;
  delete env.HIPPO_TOKEN_FILE;
  if (server.tokenFile) env.HIPPO_TOKEN_FILE = server.tokenFile;
  else if (server.token) env.HIPPO_TOKEN = server.token;
  return env;
}

export function startWorker(server, id) {
  const child = spawn(HIPPO, ["worker", "--coordinator", server.grpc, "--id", id, "--checkpoint-dir", path.join(server.dir, "ckpt")], { env: clientEnv(server), stdio: "ignore" });
  children.add(child);
  return child;
}

export function submit(server, spec) {
  return execFileSync(HIPPO, ["submit", spec, "--coordinator", server.grpc], { env: clientEnv(server) }).toString().trim();
}

/**
 * A JSON API call. The dashboard's token goes as the header x-hippo-token, unless `token` says
 * otherwise ("" sends none) or the call authenticates itself (x-hippo-token, Authorization or
 * Cookie among its headers).
 */
export async function api(url, route, { token, ...init } = {}) {
  const base = new URL(url);
  const own = Object.keys(init.headers ?? {}).map((name) => name.toLowerCase());
  const authenticated = own.some((name) => ["x-hippo-token", "authorization", "cookie"].includes(name));
  const given = token ?? (authenticated ? "" : tokens.get(base.origin) ?? "");
  const headers = { ...(init.headers ?? {}) };
  if (given) headers["x-hippo-token"] = given;
  const response = await fetch(new URL(`api/v1/${route}`, base), { ...init, headers });
  return { status: response.status, body: await response.json(), headers: response.headers };
}

/** Polls `check` until it returns a truthy value. */
export async function eventually(check, what, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}
