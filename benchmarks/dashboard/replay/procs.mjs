// CPU seconds of a process tree's threads, read from /proc: a browser's processes (by their
// Chromium --type, "browser" for the root) and, in each, its threads grouped by name.
import { readdirSync, readFileSync } from "node:fs";

/** The processes under `root` (itself included): { pid, type, utility }. */
export function tree(root) {
  const parent = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      parent.set(Number(entry), Number(readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1].split(" ")[1]));
    } catch {} // ended meanwhile
  }
  const out = [];
  for (const pid of parent.keys()) {
    let at = pid;
    while (at > 1 && at !== root) at = parent.get(at) ?? 0;
    if (at !== root) continue;
    let cmd = "";
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {}
    out.push({ pid, type: cmd.match(/--type=([a-z-]+)/)?.[1] ?? "browser", utility: cmd.match(/--utility-sub-type=([a-zA-Z.]+)/)?.[1] ?? "" });
  }
  return out;
}

/** CPU seconds by "TYPE/THREAD" (e.g. "renderer/chromium" is a renderer's main thread). */
export function threads(root) {
  const sums = {};
  for (const p of tree(root)) {
    try {
      for (const task of readdirSync(`/proc/${p.pid}/task`)) {
        const comm = readFileSync(`/proc/${p.pid}/task/${task}/comm`, "utf8").trim();
        const fields = readFileSync(`/proc/${p.pid}/task/${task}/stat`, "utf8").split(") ")[1].split(" ");
        const key = `${p.type}${p.utility ? ":" + p.utility : ""}/${comm.replace(/\d+$/, "#")}`;
        sums[key] = (sums[key] ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in ticks
      }
    } catch {} // ended meanwhile
  }
  return sums;
}

/** CPU seconds a minute by thread group between two `threads` readings `minutes` apart. */
export function perMinute(before, after, minutes) {
  const out = {};
  for (const key of Object.keys(after)) {
    const rate = (after[key] - (before[key] ?? 0)) / minutes;
    if (rate > 0.005) out[key] = rate;
  }
  return out;
}
