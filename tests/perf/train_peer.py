#!/usr/bin/python3
# PyTorch peer of tests/perf/bench_train.cpp: the same models, batches, losses and optimizers trained on
# synthetic data, printed as "model=<m> threads=<t> batch=<b> images_per_s=<x> peak_rss_mb=<y>" (images per
# second from the median step time, peak RSS = VmHWM). Run with Debian's /usr/bin/python3 (torch 1.13, CPU).
import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 1234
CLASSIFIER_BATCH = 128
GAN_BATCH = 64
CLASSES = 10
LATENT = 100
MODELS = ["mlp", "resnet20", "resnet20_28", "dcgan", "cgan", "wgan_gp", "vae", "pixelcnn", "cyclegan", "lstm"]


class MLP(nn.Module):
    """Lockstep's models::MLP(784, {512, 256}, 10): flatten, Linear + ReLU per hidden layer, Linear."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, CLASSES)

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class BasicBlock(nn.Module):
    """He et al.'s basic block with the type-A shortcut (subsample ::2, zero-pad channels evenly)."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride = stride
        self.extra = c_out - c_in

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x[:, :, :: self.stride, :: self.stride] if self.stride != 1 else x
        if self.extra:
            before = self.extra // 2
            identity = F.pad(identity, (0, 0, 0, 0, before, self.extra - before))
        return F.relu(out + identity)


class CifarResNet(nn.Module):
    """Lockstep's models::CifarResNet(20, in_channels, 10): 3x3 conv to 16, stages of 3 blocks (16/32/64)."""

    def __init__(self, in_channels, depth=20):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, c_in = [], 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(64, CLASSES)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def dcgan_generator(width=64, latent=LATENT):
    """PyTorch's DCGAN example generator at 32x32x1 (as src/models/dcgan.h: a bias on the last layer only)."""
    return nn.Sequential(
        nn.ConvTranspose2d(latent, 4 * width, 4, 1, 0, bias=False), nn.BatchNorm2d(4 * width), nn.ReLU(True),
        nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width),
        nn.ReLU(True),
        nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
        nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh())


def dcgan_discriminator(width=64, channels=1):
    """PyTorch's DCGAN example discriminator at 32x32 returning logits (biases as in src/models/dcgan.h)."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True),
        nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2, True),
        nn.Conv2d(2 * width, 4 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * width),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(4 * width, 1, 4, 1, 0))


def layer_norm_critic(width=64):
    """src/models/wgan.h's WGANCritic with layer norm over each stage's [C, H, W] (every conv with a bias)."""
    return nn.Sequential(
        nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LayerNorm([2 * width, 8, 8]), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.LayerNorm([4 * width, 4, 4]), nn.LeakyReLU(0.2),
        nn.Conv2d(4 * width, 1, 4, 1, 0))


class Conditional(nn.Module):
    """src/models/conditional.h: the label's embedding joins z (generator) or the images as a channel."""

    def __init__(self, net, generator):
        super().__init__()
        self.net, self.generator = net, generator
        self.embedding = nn.Embedding(CLASSES, CLASSES if generator else 32 * 32)

    def forward(self, x, labels):
        if self.generator:
            return self.net(torch.cat([x, self.embedding(labels)], 1).view(x.shape[0], -1, 1, 1))
        return self.net(torch.cat([x, self.embedding(labels).view(-1, 1, 32, 32)], 1))


def dcgan_init_(module):
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def decay_groups(model, weight_decay):
    """Lockstep's DecayPolicy::kWeightsOnly: weight decay on tensors with dim >= 2 only."""
    params = list(model.parameters())
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def classifier_step(model, image_shape, optimizer):
    inputs = torch.rand(CLASSIFIER_BATCH, *image_shape) * 2 - 1
    labels = torch.randint(0, CLASSES, (CLASSIFIER_BATCH,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs), labels).backward()
        optimizer.step()

    return CLASSIFIER_BATCH, step


def gan_step(kind):
    """bench_train.cpp's gan_workload: dcgan, cgan (conditioned on random labels) or wgan_gp."""
    conditional, penalised = kind == "cgan", kind == "wgan_gp"
    generator = dcgan_generator(latent=LATENT + (CLASSES if conditional else 0))
    discriminator = layer_norm_critic() if penalised else dcgan_discriminator(channels=2 if conditional else 1)
    dcgan_init_(generator)
    dcgan_init_(discriminator)
    labels = torch.randint(0, CLASSES, (GAN_BATCH,)) if conditional else None
    if conditional:
        generator, discriminator = Conditional(generator, True), Conditional(discriminator, False)
        gen = lambda z: generator(z, labels)  # noqa: E731
        dis = lambda x: discriminator(x, labels).view(-1)  # noqa: E731
    else:
        gen = lambda z: generator(z.view(GAN_BATCH, LATENT, 1, 1))  # noqa: E731
        dis = lambda x: discriminator(x).view(-1)  # noqa: E731
    betas, lr = ((0.0, 0.9), 1e-4) if penalised else ((0.5, 0.999), 2e-4)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
    real = torch.rand(GAN_BATCH, 1, 32, 32) * 2 - 1
    ones, zeros = torch.ones(GAN_BATCH), torch.zeros(GAN_BATCH)
    bce = F.binary_cross_entropy_with_logits

    def step():
        fake = gen(torch.randn(GAN_BATCH, LATENT))

        opt_d.zero_grad(set_to_none=True)
        if penalised:
            loss_d = dis(fake.detach()).mean() - dis(real).mean()
            alpha = torch.rand(GAN_BATCH, 1, 1, 1)
            mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
            (g,) = torch.autograd.grad(dis(mixed).sum(), mixed, create_graph=True)
            norms = torch.sqrt(g.pow(2).sum(dim=(1, 2, 3)) + 1e-12)
            loss_d = loss_d + 10.0 * ((norms - 1) ** 2).mean()
        else:
            loss_d = bce(dis(real), ones) + bce(dis(fake.detach()), zeros)
        loss_d.backward()
        opt_d.step()

        opt_g.zero_grad(set_to_none=True)
        for p in discriminator.parameters():
            p.requires_grad_(False)
        (-dis(fake).mean() if penalised else bce(dis(fake), ones)).backward()
        for p in discriminator.parameters():
            p.requires_grad_(True)
        opt_g.step()

    return GAN_BATCH, step


class VAE(nn.Module):
    """src/models/autoencoder.h's MLP VAE: 784-512-256 to 2 x 32 (mean, log-variance), mirrored decoder to logits."""

    def __init__(self, code=32):
        super().__init__()
        self.code = code
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                                     nn.Linear(256, 2 * code))
        self.decoder = nn.Sequential(nn.Linear(code, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(),
                                     nn.Linear(512, 784))


class MaskedConv2d(nn.Conv2d):
    """src/nn/conv.h's MaskedConv2d: the weight times a raster-order mask (type A without the centre)."""

    def __init__(self, kind, c_in, c_out, k):
        super().__init__(c_in, c_out, k, padding=k // 2)
        mask = torch.zeros(k * k)
        mask[: k * k // 2 + (1 if kind == "B" else 0)] = 1
        self.register_buffer("mask", mask.view(1, 1, k, k))

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """src/models/pixelcnn.h's PixelCNN: masked A 7x7, residual blocks (1x1, masked B 3x3, 1x1), head to 256."""

    def __init__(self, width=32, blocks=4):
        super().__init__()
        self.input = MaskedConv2d("A", 1, width, 7)
        self.blocks = nn.ModuleList(nn.ModuleList([nn.Conv2d(width, width // 2, 1), MaskedConv2d("B", width // 2, width // 2, 3),
                                                   nn.Conv2d(width // 2, width, 1)]) for _ in range(blocks))
        self.head_masked = MaskedConv2d("B", width, width, 1)
        self.head_out = nn.Conv2d(width, 256, 1)

    def forward(self, x):
        x = self.input(x)
        for reduce, masked, expand in self.blocks:
            x = x + expand(F.relu(masked(F.relu(reduce(F.relu(x))))))
        return self.head_out(F.relu(self.head_masked(F.relu(x))))


def generative_step(kind):
    """bench_train.cpp's generative_workload: one step of the VAE's negative ELBO or PixelCNN's cross-entropy."""
    x = torch.rand(GAN_BATCH, 1, 28, 28)
    if kind == "vae":
        vae = VAE()
        opt = torch.optim.Adam(vae.parameters(), lr=1e-3)

        def step():
            out = vae.encoder(x)
            mean, logvar = out[:, : vae.code], out[:, vae.code:]
            z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
            logits = vae.decoder(z).view_as(x)
            rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
            kl = -0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp()) / x.shape[0]
            opt.zero_grad(set_to_none=True)
            (rec + kl).backward()
            opt.step()

        return GAN_BATCH, step
    model = PixelCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    levels = torch.clamp(x * 255 + 0.5, 0, 255).long().view(GAN_BATCH, 28, 28)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), levels).backward()
        opt.step()

    return GAN_BATCH, step


def cyclegan_generator(width=32, blocks=6):
    """src/models/cyclegan.h's ResNet generator (the authors' layout, instance norm without affine)."""
    def block(dim):
        return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
                             nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim))

    class Residual(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.conv_block = block(dim)

        def forward(self, x):
            return x + self.conv_block(x)

    layers = [nn.ReflectionPad2d(3), nn.Conv2d(1, width, 7), nn.InstanceNorm2d(width), nn.ReLU(True)]
    for mult in (1, 2):
        layers += [nn.Conv2d(width * mult, width * mult * 2, 3, 2, 1), nn.InstanceNorm2d(width * mult * 2), nn.ReLU(True)]
    layers += [Residual(4 * width) for _ in range(blocks)]
    for mult in (4, 2):
        layers += [nn.ConvTranspose2d(width * mult, width * mult // 2, 3, 2, 1, output_padding=1),
                   nn.InstanceNorm2d(width * mult // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, 1, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def patchgan(width=64):
    """src/models/cyclegan.h's PatchGAN with 2 stride-2 layers (a 6x6 patch map at 32x32)."""
    return nn.Sequential(nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2, True),
                         nn.Conv2d(width, 2 * width, 4, 2, 1), nn.InstanceNorm2d(2 * width), nn.LeakyReLU(0.2, True),
                         nn.Conv2d(2 * width, 4 * width, 4, 1, 1), nn.InstanceNorm2d(4 * width), nn.LeakyReLU(0.2, True),
                         nn.Conv2d(4 * width, 1, 4, 1, 1))


def cyclegan_step():
    """bench_train.cpp's cyclegan_workload: the generators' step, then both discriminators' steps."""
    g, f, d_a, d_b = cyclegan_generator(), cyclegan_generator(), patchgan(), patchgan()
    for m in (g, f, d_a, d_b):
        dcgan_init_(m)
    opt_g = torch.optim.Adam(list(g.parameters()) + list(f.parameters()), lr=2e-4, betas=(0.5, 0.999))
    opt_da = torch.optim.Adam(d_a.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_db = torch.optim.Adam(d_b.parameters(), lr=2e-4, betas=(0.5, 0.999))
    a, b = torch.rand(8, 1, 32, 32) * 2 - 1, torch.rand(8, 1, 32, 32) * 2 - 1
    l1 = F.l1_loss

    def step():
        for p in list(d_a.parameters()) + list(d_b.parameters()):
            p.requires_grad_(False)
        fake_b, fake_a = g(a), f(b)
        loss_g = ((d_b(fake_b) - 1) ** 2).mean() + ((d_a(fake_a) - 1) ** 2).mean() + \
            10 * (l1(f(fake_b), a) + l1(g(fake_a), b)) + 5 * (l1(g(b), b) + l1(f(a), a))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in list(d_a.parameters()) + list(d_b.parameters()):
            p.requires_grad_(True)
        for d, opt, real, fake in ((d_a, opt_da, a, fake_a), (d_b, opt_db, b, fake_b)):
            opt.zero_grad(set_to_none=True)
            (0.5 * (((d(real) - 1) ** 2).mean() + (d(fake.detach()) ** 2).mean())).backward()
            opt.step()

    return 8, step


class RowLSTM(nn.Module):
    """bench_train.cpp's lstm: images [N, 1, 28, 28] as 28 steps of 28 pixels, torch.nn.LSTM(28, 128), the
    last step's h through Linear(128, 10)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(28, 128)
        self.head = nn.Linear(128, CLASSES)

    def forward(self, x):
        out, _ = self.lstm(x.reshape(x.shape[0], 28, 28).transpose(0, 1))
        return self.head(out[-1])


def make_workload(model):
    if model == "lstm":
        net = RowLSTM()
        return classifier_step(net, (1, 28, 28), torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9))
    if model == "mlp":
        net = MLP()
        return classifier_step(net, (1, 28, 28), torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9))
    if model in ("resnet20", "resnet20_28"):
        channels, size = (3, 32) if model == "resnet20" else (1, 28)
        net = CifarResNet(channels)
        optimizer = torch.optim.SGD(decay_groups(net, 5e-4), lr=0.1, momentum=0.9)
        return classifier_step(net, (channels, size, size), optimizer)
    if model in ("vae", "pixelcnn"):
        return generative_step(model)
    if model == "cyclegan":
        return cyclegan_step()
    return gan_step(model)


def peak_rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--bf16", action="store_true",
                        help="each step under torch.autocast('cpu', bfloat16), the peer of Lockstep's "
                             "--precision bf16")
    args = parser.parse_args()
    if args.steps <= 0 or args.warmup < 0:
        sys.exit(f"train_peer.py: expected --steps > 0 and --warmup >= 0, "
                 f"but got steps={args.steps}, warmup={args.warmup}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    batch, step = make_workload(args.model)
    if args.bf16:
        fp32_step = step

        def step():
            with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
                fp32_step()
    for _ in range(args.warmup):
        step()
    seconds = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    median = sorted(seconds)[len(seconds) // 2]  # the element bench_train.cpp takes as its median
    print(f"model={args.model} threads={torch.get_num_threads()} batch={batch} "
          f"images_per_s={batch / median:.1f} peak_rss_mb={peak_rss_mb():.1f} "
          f"precision={'bf16' if args.bf16 else 'f32'}", flush=True)


if __name__ == "__main__":
    main()
