// A Chromium whose pages run with no DevTools client attached, as in a user's browser.
//
// playwright attaches to every page it opens and enables DevTools domains in it (Network among
// them), so each server-sent event a page receives is also turned into DevTools messages
// (Network.eventSourceMessageReceived with the event's whole text, Network.dataReceived) that
// the renderer and the browser process make and send and the driving node process parses. In
// a development probe with ten study pages (seventh round) that was about an eighth of the
// browser's CPU (22 against 19 CPU-s a minute; the browser process's 1.4 against 0.3) and
// 0.5 CPU-s a minute of the node process, all on the coordinator's cores, none of which a
// user's browser pays.
//
// So the benchmark's watching pages are opened here instead: the browser is started with the
// very arguments playwright gave the browser of the benchmark's first part (read from its
// /proc/PID/cmdline: the same flags, headless mode and all) and driven over a bare DevTools
// pipe at the browser level only: each page is made by Target.createTarget in a context and a
// window of its own (as playwright's browser.newContext() does) and is attached to only for a
// call that reads it (before and after it watches), never while it watches.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/** The arguments of the running browser `pid` (launched by playwright), to start another. */
export function argumentsOf(pid) {
  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  return argv.slice(1).filter((arg) => !arg.startsWith("--user-data-dir") && arg !== "--remote-debugging-pipe" && arg !== "about:blank");
}

export class BareBrowser {
  /** Starts `executable` with `args`, its own profile and a DevTools pipe (fds 3 and 4). */
  constructor(executable, args) {
    const profile = mkdtempSync(path.join(tmpdir(), "hippo-bench-chromium-"));
    this.child = spawn(executable, [...args, `--user-data-dir=${profile}`, "--remote-debugging-pipe"], { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"] });
    this.rootPid = this.child.pid; // /usr/bin/chromium execs the browser: the same process
    this.nextId = 0;
    this.waiting = new Map();
    let buffered = "";
    this.child.stdio[4].on("data", (chunk) => {
      buffered += chunk.toString();
      let end;
      while ((end = buffered.indexOf("\0")) >= 0) {
        const message = JSON.parse(buffered.slice(0, end));
        buffered = buffered.slice(end + 1);
        const waiter = this.waiting.get(message.id);
        if (!waiter) continue; // an event: none is asked for
        this.waiting.delete(message.id);
        if (message.error) waiter.reject(new Error(`${waiter.method}: ${JSON.stringify(message.error)}`));
        else waiter.resolve(message.result);
      }
    });
  }

  send(method, params = {}, sessionId = undefined) {
    return new Promise((resolve, reject) => {
      const id = ++this.nextId;
      this.waiting.set(id, { resolve, reject, method });
      this.child.stdio[3].write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + "\0");
    });
  }

  /** Opens `url` in a new context and window whose viewport is `width` x `height`. */
  async open(url, width, height) {
    const { browserContextId } = await this.send("Target.createBrowserContext", {});
    const { targetId } = await this.send("Target.createTarget", { url: "about:blank", browserContextId, newWindow: true, width, height });
    const page = { targetId, browserContextId };
    // The window is sized so that the viewport is (a headless window keeps a margin for the
    // frame it does not draw); no emulation, which would end with the session.
    const [innerWidth, innerHeight] = await this.evaluate(page, "[innerWidth, innerHeight]");
    const { windowId } = await this.send("Browser.getWindowForTarget", { targetId });
    await this.send("Browser.setWindowBounds", { windowId, bounds: { width: 2 * width - innerWidth, height: 2 * height - innerHeight } });
    await this.navigate(page, url);
    return page;
  }

  navigate(page, url) {
    return this.call(page, (session) => this.send("Page.navigate", { url }, session));
  }

  /**
   * Runs `body(sessionId)` attached to `page`, then detaches (which disables every domain the
   * call enabled).
   */
  async call(page, body) {
    const { sessionId } = await this.send("Target.attachToTarget", { targetId: page.targetId, flatten: true });
    try {
      return await body(sessionId);
    } finally {
      await this.send("Target.detachFromTarget", { sessionId }).catch(() => {});
    }
  }

  /** The value of `expression` in `page`. */
  evaluate(page, expression) {
    return this.call(page, async (session) => {
      const { result, exceptionDetails } = await this.send("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true }, session);
      if (exceptionDetails) throw new Error(exceptionDetails.text);
      return result.value;
    });
  }

  async closeContext(page) {
    await this.send("Target.disposeBrowserContext", { browserContextId: page.browserContextId }).catch(() => {});
  }

  close() {
    this.child.kill("SIGKILL");
  }
}
