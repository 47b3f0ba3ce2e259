// Records what a study page receives from a running coordinator, to replay it later into
// several builds of the web app (replay_server.mjs, compare.mjs): every /api/ read the page
// makes (URL, status, headers, body) and the bytes of its first event stream, each chunk with
// its time from the stream's opening.
//
//   HIPPO_BIN=build/cli/hippo HIPPO_NODE_MODULES=build/dashboard/web/node_modules \
//     node benchmarks/dashboard/replay/record.mjs OUT.json [SECONDS=100] [DIST=build/dashboard/web/dist] [AFTER=0]
//
// The coordinator is started here (`hippo server --http` on a free port, a fresh store) with
// the benchmark's running study (../running.yaml) and two sim workers, as
// dashboard_benchmark.mjs does; the page (headless Chromium, 1440 × 1000) watches it through a
// proxy that serves DIST and records what passes, from AFTER seconds after the study started
// (a running study's events change as it grows: its sample and bins thin out, its best moves
// less often).
import http from "node:http";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { api, eventually, playwright, startServer, startWorker, stopAll, submit } from "../../../tests/dashboard/harness.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const [out, secondsArg, distArg, afterArg] = process.argv.slice(2);
if (!out) throw new Error("usage: record.mjs OUT.json [SECONDS] [DIST] [AFTER]");
const seconds = Number(secondsArg ?? 100);
const dist = distArg ?? path.join(path.dirname(process.env.HIPPO_NODE_MODULES ?? "."), "dist");

const server = await startServer({});
startWorker(server, "w1");
startWorker(server, "w2");
const id = await eventually(async () => submit(server, path.join(here, "..", "running.yaml")), "the running study submitted", 120000);
await eventually(async () => Number((await api(server.url, `studies/${id}`)).body.study?.trials_completed ?? 0) > 50, "the study running", 120000);
await new Promise((resolve) => setTimeout(resolve, Number(afterArg ?? 0) * 1000));

const target = new URL(server.url);
const started = Date.now();
const recording = { id, reads: [], events: [] };
let streams = 0;
const proxy = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (!url.pathname.startsWith("/api/")) {
    const file = path.join(dist, url.pathname === "/" ? "index.html" : url.pathname);
    if (!existsSync(file)) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": file.endsWith(".js") ? "text/javascript" : file.endsWith(".css") ? "text/css" : "text/html" });
    res.end(readFileSync(file));
    return;
  }
  const headers = { ...req.headers, host: target.host, "x-hippo-token": server.token };
  const upstream = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers }, (answer) => {
    res.writeHead(answer.statusCode, answer.headers);
    const stream = url.pathname === "/api/v1/events" ? streams++ : -1;
    const opened = Date.now();
    const chunks = [];
    answer.on("data", (chunk) => {
      if (stream === 0) recording.events.push({ t: Date.now() - opened, data: chunk.toString("base64") });
      else chunks.push(chunk);
    });
    answer.on("end", () => {
      if (stream < 0) recording.reads.push({ t: Date.now() - started, url: req.url, status: answer.statusCode, headers: answer.headers, body: Buffer.concat(chunks).toString("base64") });
    });
    answer.pipe(res);
  });
  upstream.on("error", () => res.destroy());
  req.pipe(upstream);
  res.on("close", () => upstream.destroy());
});
await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
const browser = await playwright().chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const page = await (await browser.newContext({ viewport: { width: 1440, height: 1000 } })).newPage();
await page.goto(`http://127.0.0.1:${proxy.address().port}/#/study/${id}`);
await page.waitForTimeout(seconds * 1000);
await browser.close();
writeFileSync(out, JSON.stringify(recording));
const bytes = recording.events.reduce((sum, e) => sum + Buffer.from(e.data, "base64").length, 0);
console.log(`${out}: study ${id}, ${recording.reads.length} reads, ${recording.events.length} event chunks, ${bytes} event bytes over ${seconds} s`);
proxy.close();
stopAll();
process.exit(0);
