#!/usr/bin/env python3
"""CPU by thread and by trace event in a Chromium trace (trace.mjs): for each thread with more
than 20 ms, its thread time at the top level (CPU-s a minute over the trace's span) and the
events that took it (self time, nested events' time taken out). With a trace made with
`--profile`, also the JavaScript functions sampled (self and inclusive).

Usage: trace_summary.py TRACE.json [TOP=25]"""
import collections
import json
import sys

trace = json.load(open(sys.argv[1]))
top_n = int(sys.argv[2]) if len(sys.argv) > 2 else 25
events = trace["traceEvents"] if isinstance(trace, dict) else trace
thread_names, process_names = {}, {}
for e in events:
    if e.get("ph") == "M" and e.get("name") == "thread_name":
        thread_names[(e["pid"], e["tid"])] = e["args"]["name"]
    if e.get("ph") == "M" and e.get("name") == "process_name":
        process_names[e["pid"]] = e["args"]["name"]
stamps = [e["ts"] for e in events if "ts" in e and e.get("ph") in ("X", "B", "E")]
span = (max(stamps) - min(stamps)) / 1e6
print(f"span {span:.1f} s")

# Complete events (X, or B/E pairs) with thread time, per thread.
spans = collections.defaultdict(list)
open_ = collections.defaultdict(list)
for e in events:
    ph, key = e.get("ph"), (e.get("pid"), e.get("tid"))
    if ph == "X" and "tdur" in e:
        spans[key].append((e["tts"], e["tts"] + e["tdur"], e["name"]))
    elif ph == "B" and "tts" in e:
        open_[key].append(e)
    elif ph == "E" and "tts" in e and open_[key]:
        b = open_[key].pop()
        spans[key].append((b["tts"], e["tts"], b["name"]))
for key, items in sorted(spans.items(), key=lambda kv: -sum(f - s for s, f, _ in kv[1])):
    items.sort(key=lambda i: (i[0], -i[1]))
    self_time, stack, top = collections.Counter(), [], 0
    for s, f, name in items:
        while stack and stack[-1][1] <= s:
            stack.pop()
        if stack:
            self_time[stack[-1][2]] -= min(f, stack[-1][1]) - s
        else:
            top += f - s
        self_time[name] += f - s
        stack.append((s, f, name))
    if top < 20e3:
        continue
    print(f"\n== {process_names.get(key[0], '?')} {key[0]} / {thread_names.get(key, '?')}: {top / 1e3:.0f} ms at the top level = {top / 1e6 / span * 60:.2f} CPU-s a minute")
    for name, t in self_time.most_common(top_n):
        if t >= 2e3:
            print(f"  {t / 1e3:8.1f} ms self  {name}")

# The JavaScript CPU profile (samples), when recorded.
nodes, samples, deltas = {}, [], []
for e in events:
    if e.get("name") == "ProfileChunk":
        data = e["args"]["data"]
        for n in data.get("cpuProfile", {}).get("nodes", []):
            nodes[n["id"]] = n
        samples += data.get("cpuProfile", {}).get("samples", [])
        deltas += data.get("timeDeltas", [])
if samples:
    def label(n):
        frame = n["callFrame"]
        return f'{frame.get("functionName") or "(anonymous)"} {frame.get("url", "").split("/")[-1]}:{frame.get("lineNumber", -1)}'
    self_t, total_t = collections.Counter(), collections.Counter()
    for i, s in enumerate(samples):
        dt = deltas[i + 1] if i + 1 < len(deltas) else 0
        n = nodes.get(s)
        seen = set()
        if n:
            self_t[label(n)] += dt
        while n:
            l = label(n)
            if l not in seen:
                total_t[l] += dt
                seen.add(l)
            n = nodes.get(n.get("parent"))
    print(f"\nJavaScript samples: {sum(self_t.values()) / 1e3:.0f} ms")
    print("-- self")
    for l, t in self_t.most_common(top_n):
        print(f"{t / 1e3:8.1f} {l}")
    print("-- inclusive")
    for l, t in total_t.most_common(top_n):
        print(f"{t / 1e3:8.1f} {l}")
