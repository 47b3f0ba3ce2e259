#!/usr/bin/env python3
"""PyTorch reference for the torch trainer benchmark (issue 6).

The same model and step as Hippo's `torch` trainer (workers/torch/models.cc, torch_trainer.cc),
written the way a PyTorch user would: the CIFAR ResNet of He et al. (depth 6n+2, 3x3 stem, three
stages of basic blocks with 16/32/64 channels, option-A shortcuts: strided slicing and zero-padded
channels, global average pool, linear), convolutions without bias, batch norm (momentum 0.1, eps
1e-5), cross-entropy, torch.optim.SGD with momentum 0.9, Nesterov and weight decay 5e-4.

One iteration, as in Hippo: copy the batch's indices into a static index tensor, gather the
images (uint8, resident on the device) and labels, normalise (one multiply-add), forward (under
bf16 autocast for bf16, logits cast back to fp32), loss, backward, optimizer step, add the loss to
a running sum. Every `iterations_per_step` iterations the running sum is read with .item() (a
synchronisation, as Hippo reads each step's loss).

Modes: eager; graph = the whole iteration captured once with torch.cuda.graphs (warm-up on a
side stream, zero_grad(set_to_none=True) before capture, as PyTorch's CUDA-graph notes show) and
replayed. Writes JSON and prints a table.

Usage: pytorch_reference.py [--json FILE] [--models resnet20,resnet56] [--batch-sizes 128,512]
       [--precisions fp32,bf16] [--modes eager,graph] [--layouts nchw,nhwc] [--steps 4]
       [--iterations-per-step 50]
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x):
        y = F.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        shortcut = x
        if self.stride != 1:
            shortcut = shortcut[:, :, :: self.stride, :: self.stride]
        if self.extra_channels > 0:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        return F.relu(y + shortcut)


class ResNet(nn.Module):
    def __init__(self, depth, in_channels=3, classes=10):
        super().__init__()
        n = (depth - 2) // 6
        widths = [16, 32, 64]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.stem_norm = nn.BatchNorm2d(widths[0])
        blocks = []
        channels = widths[0]
        for stage, width in enumerate(widths):
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(BasicBlock(channels, width, stride))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.output = nn.Linear(channels, classes)

    def forward(self, x):
        x = F.relu(self.stem_norm(self.stem(x)))
        x = self.blocks(x)
        return self.output(x.mean(dim=(2, 3)))


def measure(model_name, batch_size, precision, mode, layout, args, data):
    device = torch.device("cuda")
    torch.manual_seed(0)
    depth = 56 if model_name == "resnet56" else 20
    model = ResNet(depth).to(device).train()
    nhwc = layout == "nhwc"
    if nhwc:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)
    images_all, labels_all, scale, shift = data
    if nhwc:
        images_all = images_all.permute(0, 2, 3, 1).contiguous()
    count = labels_all.numel()
    batches_per_epoch = count // batch_size
    indices = torch.zeros(batch_size, dtype=torch.long, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    bf16 = precision == "bf16"
    generator = torch.Generator(device=device)
    generator.manual_seed(0)
    order = torch.randperm(count, device=device, generator=generator)
    position = [0]

    def next_batch():
        b = position[0]
        indices.copy_(order[b * batch_size:(b + 1) * batch_size])
        position[0] = (b + 1) % batches_per_epoch

    def iteration():
        images = images_all.index_select(0, indices)
        if nhwc:  # stored N,H,W,C: the view N,C,H,W is channels_last, and .float() keeps it
            images = images.permute(0, 3, 1, 2)
        images = images.float().mul_(scale).add_(shift)
        labels = labels_all.index_select(0, indices)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        optimizer.step()
        loss_sum.add_(loss.detach())

    graph = None
    if mode == "graph":
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                next_batch()
                optimizer.zero_grad(set_to_none=True)
                iteration()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            iteration()

    def run_step():
        loss_sum.zero_()
        for _ in range(args.iterations_per_step):
            next_batch()
            if graph is not None:
                graph.replay()
            else:
                optimizer.zero_grad(set_to_none=True)
                iteration()
        return loss_sum.item() / args.iterations_per_step  # synchronises, as Hippo's step does

    for _ in range(args.warmup_steps):
        run_step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    loss = 0.0
    for _ in range(args.steps):
        loss = run_step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    iterations = args.steps * args.iterations_per_step
    return {
        "model": model_name, "batch_size": batch_size, "precision": precision, "mode": mode,
        "layout": layout, "status": "ok" if math.isfinite(loss) else "loss is not finite",
        "images_per_second": iterations * batch_size / seconds,
        "ms_per_iteration": 1000 * seconds / iterations, "loss": loss,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default="pytorch_reference.json")
    parser.add_argument("--models", default="resnet20,resnet56")
    parser.add_argument("--batch-sizes", default="128,512")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--modes", default="eager,graph")
    parser.add_argument("--layouts", default="nchw",
                        help="nchw (PyTorch's default), nhwc (channels_last), or both")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup-steps", type=int, default=1)
    parser.add_argument("--iterations-per-step", type=int, default=50)
    parser.add_argument("--train-examples", type=int, default=50000)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("pytorch_reference.py: needs a CUDA device")
    torch.backends.cudnn.benchmark = True  # as Hippo's trainer sets it

    device = torch.device("cuda")
    generator = torch.Generator(device=device)
    generator.manual_seed(1)
    images = torch.randint(0, 256, (args.train_examples, 3, 32, 32), dtype=torch.uint8,
                           device=device, generator=generator)
    labels = torch.randint(0, 10, (args.train_examples,), device=device, generator=generator)
    scale = torch.full((1, 3, 1, 1), 1 / (255 * 0.25), device=device)
    shift = torch.full((1, 3, 1, 1), -0.5 / 0.25, device=device)
    data = (images, labels, scale, shift)

    rows = []
    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name(0)} "
          f"({args.iterations_per_step} iterations a step)")
    print(f"{'model':9} {'batch':>6} {'prec':>5} {'layout':>6} {'mode':>6} {'images/s':>12} "
          f"{'ms/iter':>10}")
    for model_name in args.models.split(","):
        for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
            for precision in args.precisions.split(","):
                for layout in args.layouts.split(","):
                    for mode in args.modes.split(","):
                        try:
                            row = measure(model_name, batch_size, precision, mode, layout, args,
                                          data)
                        except Exception as error:  # report and go on with the other rows
                            row = {"model": model_name, "batch_size": batch_size,
                                   "precision": precision, "mode": mode, "layout": layout,
                                   "status": repr(error)}
                        rows.append(row)
                        label = f"{model_name:9} {batch_size:6} {precision:>5} {layout:>6} {mode:>6}"
                        if row["status"] == "ok":
                            print(f"{label} {row['images_per_second']:12.0f} "
                                  f"{row['ms_per_iteration']:10.3f}", flush=True)
                        else:
                            print(f"{label}  {row['status']}", flush=True)
    result = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0),
              "iterations_per_step": args.iterations_per_step, "steps": args.steps,
              "warmup_steps": args.warmup_steps, "rows": rows}
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    print(f"figures: {args.json}")


if __name__ == "__main__":
    main()
