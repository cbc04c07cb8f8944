#!/usr/bin/python3
# PyTorch peer of tests/perf/bench_ops.cpp: the same training passes (shapes, passes, float32), printed as
# "<name> <ms per iteration>" (median of timed repetitions after warm-up). Run with Debian's /usr/bin/python3.
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def conv2d_case(n, c_in, c_out, hw, kernel, stride, pad):
    x = (torch.rand(n, c_in, hw, hw) * 2 - 1).requires_grad_()
    w = (torch.rand(c_out, c_in, kernel, kernel) * 0.2 - 0.1).requires_grad_()
    b = torch.zeros(c_out).requires_grad_()
    out = (hw + 2 * pad - kernel) // stride + 1
    dy = torch.rand(n, c_out, out, out) * 2 - 1

    def step():
        x.grad = w.grad = b.grad = None
        y = F.conv2d(x, w, b, stride=stride, padding=pad)
        y.backward(dy)

    return step


def conv_transpose2d_case(n, c_in, c_out, hw, kernel, stride, pad):
    x = (torch.rand(n, c_in, hw, hw) * 2 - 1).requires_grad_()
    w = (torch.rand(c_in, c_out, kernel, kernel) * 0.2 - 0.1).requires_grad_()
    out = stride * (hw - 1) + kernel - 2 * pad
    dy = torch.rand(n, c_out, out, out) * 2 - 1

    def step():
        x.grad = w.grad = None
        y = F.conv_transpose2d(x, w, None, stride=stride, padding=pad)
        y.backward(dy)

    return step


def batch_norm_case(shape):
    channels = shape[1]
    x = (torch.rand(*shape) * 2 - 1).requires_grad_()
    weight = torch.ones(channels).requires_grad_()
    bias = torch.zeros(channels).requires_grad_()
    running_mean, running_var = torch.zeros(channels), torch.ones(channels)
    dy = torch.rand(*shape) * 2 - 1

    def step():
        x.grad = weight.grad = bias.grad = None
        y = F.batch_norm(x, running_mean, running_var, weight, bias, training=True, momentum=0.1, eps=1e-5)
        y.backward(dy)

    return step


def mlp_case(batch):
    sizes = [784, 512, 256, 10]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = fan_in ** -0.5
        params.append((torch.rand(fan_out, fan_in) * 2 * bound - bound).requires_grad_())
        params.append((torch.rand(fan_out) * 2 * bound - bound).requires_grad_())
    x = torch.rand(batch, sizes[0])
    target = torch.arange(batch) % 10
    lr = 0.01

    def step():
        h = F.relu(F.linear(x, params[0], params[1]))
        h = F.relu(F.linear(h, params[2], params[3]))
        loss = F.cross_entropy(F.linear(h, params[4], params[5]), target)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-lr)
                p.grad = None

    return step


CASES = {
    "conv2d/r20_c16_32x32": lambda: conv2d_case(128, 16, 16, 32, 3, 1, 1),
    "conv2d/r20_c32_16x16": lambda: conv2d_case(128, 32, 32, 16, 3, 1, 1),
    "conv2d/r20_c64_8x8": lambda: conv2d_case(128, 64, 64, 8, 3, 1, 1),
    "conv2d/stem_c1to16_28x28": lambda: conv2d_case(128, 1, 16, 28, 3, 1, 1),
    "conv_transpose2d/dcgan_c256to128_4to8": lambda: conv_transpose2d_case(64, 256, 128, 4, 4, 2, 1),
    "conv_transpose2d/dcgan_c128to64_8to16": lambda: conv_transpose2d_case(64, 128, 64, 8, 4, 2, 1),
    "conv_transpose2d/dcgan_c64to1_16to32": lambda: conv_transpose2d_case(64, 64, 1, 16, 4, 2, 1),
    "batch_norm/train_128x16x32x32": lambda: batch_norm_case((128, 16, 32, 32)),
    "mlp/784_512_256_10_b128": lambda: mlp_case(128),
}


def time_case(step, repetitions, min_time):
    for _ in range(3):
        step()
    # Iterations per repetition: enough for min_time seconds, judged from one timed call.
    start = time.perf_counter()
    step()
    once = time.perf_counter() - start
    iterations = max(1, int(min_time / max(once, 1e-6)))
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(iterations):
            step()
        samples.append((time.perf_counter() - start) * 1e3 / iterations)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description="PyTorch peer of lockstep_bench_ops")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per repetition")
    parser.add_argument("--filter", default="", help="substring of the case names to run")
    parser.add_argument("--case", default="", help="run only the case of exactly this name")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}", file=sys.stderr)
    for name, make in CASES.items():
        if args.filter in name and args.case in ("", name):
            print(f"{name} {time_case(make(), args.repetitions, args.min_time):.4f}", flush=True)


if __name__ == "__main__":
    main()
