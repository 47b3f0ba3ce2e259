// Live updates: one EventSource on /api/v1/events for the whole app. Pages subscribe and get
// every Change; after a lost connection the stream is opened again (backing off up to 5 s)
// and subscribers get a full refresh, since changes may have been missed meanwhile.
import { Json, num } from "./api";

/**
 * A change: the studies that changed (with their rows, as GET studies/{id} answers them, when
 * the server sent them along), whether the workers did, or `all` after a reconnection.
 */
export type Change = { version: number; studies: Set<string>; rows: Map<string, Json>; workers: boolean; all: boolean };
type Listener = (change: Change) => void;

const listeners = new Set<Listener>();
let version = 0;
let source: EventSource | null = null;
let retry = 500;
let everConnected = false;

function setStatus(state: "live" | "reconnecting" | "connecting") {
  const element = document.getElementById("live");
  if (!element) return;
  element.dataset.state = state;
  element.textContent = state === "live" ? "● live" : state === "reconnecting" ? "reconnecting…" : "connecting…";
}

function emit(change: Change) {
  for (const listener of [...listeners]) listener(change);
}

function connect() {
  setStatus(everConnected ? "reconnecting" : "connecting");
  source = new EventSource(`/api/v1/events${version ? `?since=${version}` : ""}`);
  source.onopen = () => {
    const missed = everConnected;
    everConnected = true;
    retry = 500;
    setStatus("live");
    if (missed) emit({ version, studies: new Set(), rows: new Map(), workers: true, all: true });
  };
  source.addEventListener("change", (event) => {
    const data: Json = JSON.parse((event as MessageEvent).data);
    version = num(data.version);
    const rows = new Map<string, Json>((data.rows ?? []).map((row: Json) => [row.study?.id ?? "", row]));
    emit({ version, studies: new Set(data.studies ?? []), rows, workers: !!data.workers, all: false });
  });
  source.onerror = () => {
    source?.close();
    source = null;
    setStatus("reconnecting");
    setTimeout(connect, retry);
    retry = Math.min(5000, retry * 2);
  };
}

export function subscribe(listener: Listener): () => void {
  listeners.add(listener);
  if (!source) connect();
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
