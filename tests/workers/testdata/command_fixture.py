"""A program for the command trainer's tests, driven by "mode" in the trainer config.

train    deterministic toy training: x <- 0.9 x + lr + noise(seed, step, x); checkpoints x
echo     reports what reached it (environment, config file) as metrics
fail     prints 30 lines on stderr, then exits with status 3
segv     dies of SIGSEGV
hang     writes its pid (and a grandchild's) to pid_file, then sleeps forever
malformed, missing_steps, no_checkpoint, bad_metric: breaks one rule of the contract
"""
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time

config_path = os.environ["HIPPO_CONFIG"]
with open(config_path) as f:
    cfg = json.load(f)
settings = cfg["config"]
mode = settings.get("mode", "train")
start, end = cfg["start_step"], cfg["end_step"]
lrs = cfg["parameters"].get("lr", [0.01] * (end - start))
out_path = os.environ["HIPPO_CHECKPOINT_OUT"]
in_path = os.environ.get("HIPPO_CHECKPOINT_IN")


def noise(seed, step, x):
    digest = hashlib.sha256(struct.pack("<qqd", seed, step, x)).digest()
    return (int.from_bytes(digest[:6], "little") / 2.0**48 - 0.5) * 0.01


def emit(record):
    print(json.dumps(record), flush=True)


if mode == "fail":
    print("about to fail", flush=True)
    for i in range(1, 31):
        print(f"error line {i}", file=sys.stderr)
    sys.exit(3)
if mode == "segv":
    os.kill(os.getpid(), signal.SIGSEGV)
if mode == "hang":
    if settings.get("ignore_term"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = subprocess.Popen(["sleep", "1000"])
    with open(settings["pid_file"] + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {grandchild.pid}\n")
    os.rename(settings["pid_file"] + ".tmp", settings["pid_file"])
    while True:
        time.sleep(1)

x = 0.0
if in_path is not None:
    with open(in_path) as f:
        saved = json.load(f)
    if saved["step"] != start:
        print(f"checkpoint is at step {saved['step']}, expected {start}", file=sys.stderr)
        sys.exit(4)
    x = saved["x"]
elif start != 0:
    print("no checkpoint but start_step != 0", file=sys.stderr)
    sys.exit(5)

print(f"training steps [{start}, {end})")  # not a metrics line: ignored by the trainer
for i, step in enumerate(range(start, end)):
    if settings.get("sleep"):
        time.sleep(settings["sleep"])
    lr = lrs[i]
    x = 0.9 * x + lr + noise(cfg["seed"], step, x)
    record = {"step": step, "loss": x, "lr": lr}
    if mode == "echo":
        stable = {k: v for k, v in cfg.items() if k not in ("checkpoint_in", "checkpoint_out")}
        digest = hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()
        record.update({
            "env_start": int(os.environ["HIPPO_START_STEP"]),
            "env_end": int(os.environ["HIPPO_END_STEP"]),
            "env_seed": int(os.environ["HIPPO_SEED"]),
            "cfg_start": start,
            "cfg_end": end,
            "cfg_seed": cfg["seed"],
            "has_in": 0 if in_path is None else 1,
            "in_matches": 1 if cfg["checkpoint_in"] == in_path else 0,
            "out_matches": 1 if cfg["checkpoint_out"] == out_path else 0,
            "width": cfg["static_parameters"]["width"],
            "segments": len(cfg["segments"]["lr"]),
            "my_var": float(os.environ["MY_VAR"]),
            "cwd_is_testdata": 1 if os.path.exists("command_fixture.py") else 0,
            "stable_hash": int(digest[:12], 16),
        })
    if mode == "malformed" and step == start + 1:
        print('{"step": %d, "loss": ' % step, flush=True)
        sys.exit(0)
    if mode == "bad_metric":
        record["note"] = "text"
    emit(record)
    if mode == "missing_steps":
        break

if mode != "no_checkpoint":
    with open(out_path, "w") as f:
        json.dump({"step": end, "x": x}, f)
