// Live updates: one EventSource on /api/v1/events for the whole app. The page mounted says
// what it watches (`subscribe`'s topic: a study, the workers, or only the studies' rows) and
// the server pushes it with each change (dashboard.proto, Change: the changed studies' rows, a
// watched study's parts, the workers' page), so a watching page asks for nothing. After a lost
// connection the stream is opened again (backing off up to 5 s); meanwhile, and once it is back,
// subscribers get `all` (every 10 s while it is down: a slow fallback poll), since changes may
// have been missed.
import { Json, num } from "./api";

/**
 * A change: the studies that changed (with their rows, as GET studies/{id} answers them, when
 * the server sent them along), whether the workers did, the watched study's parts and the
 * workers' page when pushed, or `all` after a reconnection (or while disconnected).
 */
export type Change = {
  version: number;
  studies: Set<string>;
  rows: Map<string, Json>;
  workers: boolean;
  parts: Json | null;
  workersPage: Json | null;
  all: boolean;
};
type Listener = (change: Change) => void;

const listeners = new Set<Listener>();
let version = 0;
let source: EventSource | null = null;
let topic = "";
let retry = 500;
let everConnected = false;
let reopening = false; // the topic changed: a new stream, nothing missed
let fallback = 0; // the slow poll while disconnected
let pending = 0; // the reconnection's timer

function setStatus(state: "live" | "reconnecting" | "connecting") {
  const element = document.getElementById("live");
  if (!element) return;
  element.dataset.state = state;
  element.textContent = state === "live" ? "● live" : state === "reconnecting" ? "reconnecting…" : "connecting…";
}

function emit(change: Change) {
  for (const listener of [...listeners]) listener(change);
}

const everything = (): Change => ({ version, studies: new Set(), rows: new Map(), workers: true, parts: null, workersPage: null, all: true });

function connect() {
  if (!reopening) setStatus(everConnected ? "reconnecting" : "connecting");
  const params = new URLSearchParams(topic);
  if (version) params.set("since", String(version));
  const query = params.toString();
  const opened = new EventSource(`/api/v1/events${query ? `?${query}` : ""}`);
  source = opened;
  opened.onopen = () => {
    const missed = everConnected && !reopening;
    everConnected = true;
    reopening = false;
    retry = 500;
    clearInterval(fallback);
    fallback = 0;
    setStatus("live");
    if (missed) emit(everything());
  };
  opened.addEventListener("change", (event) => {
    const data: Json = JSON.parse((event as MessageEvent).data);
    version = num(data.version);
    const rows = new Map<string, Json>((data.rows ?? []).map((row: Json) => [row.study?.id ?? "", row]));
    emit({ version, studies: new Set(data.studies ?? []), rows, workers: !!data.workers, parts: data.study ?? null, workersPage: data.workers_page ?? null, all: false });
  });
  opened.onerror = () => {
    opened.close();
    if (source !== opened) return;
    source = null;
    reopening = false;
    setStatus("reconnecting");
    // While the stream is down the pages read what they show every 10 s.
    if (!fallback) fallback = window.setInterval(() => emit(everything()), 10000);
    pending = window.setTimeout(() => {
      pending = 0;
      connect();
    }, retry);
    retry = Math.min(5000, retry * 2);
  };
}

/**
 * Subscribes to the changes; `watch` is what the page shows and the stream pushes ("" the
 * studies' rows only, "study=ID" a study's page, "workers=true" the workers' page). One page is
 * mounted at a time: its topic replaces the last one (a new stream, at the version held).
 */
export function subscribe(listener: Listener, watch = ""): () => void {
  listeners.add(listener);
  if (watch !== topic) {
    topic = watch;
    if (source) {
      source.close();
      source = null;
      reopening = everConnected;
    }
  }
  if (!source) {
    clearTimeout(pending);
    pending = 0;
    connect();
  }
  return () => listeners.delete(listener);
}

/**
 * Runs `task` at most once per `ms`, and again after the last call within that window. The
 * promise a call returns settles once a run that began after the call has ended.
 */
export function throttle(task: () => Promise<void> | void, ms: number): () => Promise<void> {
  let running = false;
  let again = false;
  let last = 0;
  let waiters: (() => void)[] = [];
  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    const wait = last + ms - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    last = Date.now();
    // Calls made until now are served by this run.
    const served = waiters;
    waiters = [];
    again = false;
    try {
      await task();
    } catch (error) {
      console.warn(error);
    } finally {
      running = false;
    }
    for (const resolve of served) resolve();
    if (again) {
      again = false;
      void run();
    }
  };
  return () =>
    new Promise<void>((resolve) => {
      waiters.push(resolve);
      void run();
    });
}
