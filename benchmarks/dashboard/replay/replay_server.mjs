// Serves a web app's dist/ and a recording of record.mjs: each /api/ read answered as recorded
// (by URL, else by path), and each event stream opened gets the recorded stream's bytes at
// their recorded times from its opening, so that every page, whenever it opens, receives the
// same events at the same pace.
import http from "node:http";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

/** Reads a recording: { id, reads, events } with the bodies decoded. */
export function loadRecording(file) {
  const recording = JSON.parse(readFileSync(file, "utf8"));
  for (const read of recording.reads) read.bytes = Buffer.from(read.body, "base64");
  recording.events = recording.events.map((e) => ({ t: e.t, bytes: Buffer.from(e.data, "base64") }));
  recording.seconds = recording.events.length ? recording.events[recording.events.length - 1].t / 1000 : 0;
  return recording;
}

/** Serves `dist` and `recording` on a free port: resolves { server, url }. */
export function serveReplay(dist, recording) {
  const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/api/v1/events") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      const timers = recording.events.map((e) => setTimeout(() => res.write(e.bytes), e.t));
      res.on("close", () => timers.forEach(clearTimeout));
      return;
    }
    if (url.pathname.startsWith("/api/")) {
      const read = recording.reads.find((r) => r.url === req.url) ?? recording.reads.find((r) => r.url.split("?")[0] === url.pathname);
      if (!read) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end("{}");
        return;
      }
      res.writeHead(read.status, read.headers);
      res.end(read.bytes);
      return;
    }
    const file = path.join(dist, url.pathname === "/" ? "index.html" : url.pathname);
    if (!existsSync(file)) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${server.address().port}/` })));
}
