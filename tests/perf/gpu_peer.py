#!/usr/bin/env python3
# PyTorch peer of tests/perf/bench_gpu.cpp on the same GPU: the same three models, batches, losses and
# optimizers on synthetic data, eager mode, fp32 (or bf16 autocast with --bf16, channels-last with
# --channels-last), each step ending with torch.cuda.synchronize(). Prints
# "model=<m> device=<d> batch=<b> images_per_s=<x>" (median step time), as bench_gpu.cpp does.
# Runs under PyTorch 2.x (the GPU machine's); resnet20 and the DCGAN init come from train_peer.py.
import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_peer import CifarResNet, dcgan_init_  # noqa: E402


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (stride on the 3x3 convolution, projection shortcut when the shape changes)."""

    def __init__(self, c_in, width, stride):
        super().__init__()
        c_out = 4 * width
        self.conv1, self.bn1 = nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class ResNet50(nn.Module):
    """torchvision's resnet50(): 7x7/2 stem, 3x3/2 max-pool, stages of 3, 4, 6, 3 bottlenecks, fc to 1000."""

    def __init__(self, classes=1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(True),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, c_in = [], 64
        for width, count, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(count):
                blocks.append(Bottleneck(c_in, width, stride if i == 0 else 1))
                c_in = 4 * width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(2048, classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


def dcgan64(latent=100, width=64, channels=3):
    """src/models/dcgan.h at 64x64: generator 1 -> 4 -> 8 -> 16 -> 32 -> 64, discriminator the mirror."""
    g = nn.Sequential(
        nn.ConvTranspose2d(latent, 8 * width, 4, 1, 0, bias=False), nn.BatchNorm2d(8 * width), nn.ReLU(True),
        *[layer for m in (8, 4, 2) for layer in (nn.ConvTranspose2d(m * width, m // 2 * width, 4, 2, 1, bias=False),
                                                 nn.BatchNorm2d(m // 2 * width), nn.ReLU(True))],
        nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh())
    d = nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True),
        *[layer for m in (1, 2, 4) for layer in (nn.Conv2d(m * width, 2 * m * width, 4, 2, 1, bias=False),
                                                 nn.BatchNorm2d(2 * m * width), nn.LeakyReLU(0.2, True))],
        nn.Conv2d(8 * width, 1, 4, 1, 0))
    return g, d


def classifier_step(net, batch, channels, size, classes, weight_decay, device, memory_format, autocast):
    net = net.to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=weight_decay)
    x = (torch.rand(batch, channels, size, size, device=device) * 2 - 1).contiguous(memory_format=memory_format)
    y = torch.arange(batch, device=device) * 7 % classes

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()

    return batch, step


def dcgan_step(device, memory_format, autocast):
    g, d = dcgan64()
    dcgan_init_(g)
    dcgan_init_(d)
    g, d = g.to(device, memory_format=memory_format), d.to(device, memory_format=memory_format)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = (torch.rand(64, 3, 64, 64, device=device) * 2 - 1).contiguous(memory_format=memory_format)
    ones, zeros = torch.ones(64, device=device), torch.zeros(64, device=device)
    bce = F.binary_cross_entropy_with_logits

    def step():
        with autocast():
            fake = g(torch.randn(64, 100, 1, 1, device=device))
            loss_d = bce(d(real).view(-1), ones) + bce(d(fake.detach()).view(-1), zeros)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        for p in d.parameters():
            p.requires_grad_(False)
        with autocast():
            loss_g = bce(d(fake).view(-1), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        for p in d.parameters():
            p.requires_grad_(True)
        opt_g.step()

    return 64, step


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=["resnet50", "resnet20", "dcgan64"], required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (fp32 weights and optimizer)")
    args = parser.parse_args()
    torch.manual_seed(1234)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False  # Lockstep's fp32 uses no TF32: compare like with like
    torch.backends.cudnn.allow_tf32 = False
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)

    if args.model == "resnet50":
        batch, step = classifier_step(ResNet50(), 128, 3, 224, 1000, 1e-4, device, memory_format, autocast)
    elif args.model == "resnet20":
        batch, step = classifier_step(CifarResNet(3), 128, 3, 32, 10, 5e-4, device, memory_format, autocast)
    else:
        batch, step = dcgan_step(device, memory_format, autocast)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        step()
    sync()
    seconds = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        sync()
        seconds.append(time.perf_counter() - start)
    median = sorted(seconds)[len(seconds) // 2]
    print(f"model={args.model} device={args.device} batch={batch} images_per_s={batch / median:.1f}", flush=True)


if __name__ == "__main__":
    main()
