#!/usr/bin/env python3
"""The reference model of `mmguard bench speed` in PyTorch, timed the same way.

Optional: it needs `torch` (never installed in CI). Run from the repository root after
`cargo build --release`:

    python3 tools/pytorch_speed.py --mmguard target/release/mmguard --rounds 3

Each round runs this script's measurements and then `mmguard bench speed --json`, so both
see the same state of a shared machine; the table gives the median of the rounds and the ratio
mmguard ÷ PyTorch ("how many times faster": times are inverted). Without `--mmguard` it prints
PyTorch's figures alone as JSON.

The model is mmguard's reference architecture (`ModelConfig::new(64, 64, 18, 16)`):

* stage 1: camera encoder, four Conv2d k4 s2 p1 (3→32→64→64→32) with LeakyReLU(0.2) between,
  the mirrored ConvTranspose2d decoder with a sigmoid; sensor encoder Conv1d k3 s1 p1 (18→64),
  k4 s2 p1 (64→64, 64→32), the mirrored decoder; Adam at 1e-3 on the sum of both MSEs;
* stage 2: frozen stage-1 encoders re-encode the faulty batch (clean latents cached, as mmguard
  does), the compute block E (L→256→256), D (256→64→2), C (two spectral-normalised 256×256
  layers, contraction 0.95·(0.5h + 0.5·W₂ lrelu(W₁h))), G (256→2L, highway), the corrected
  latent decoded by the frozen decoders; loss = latent MSE + output MSE + detection BCE +
  InfoNCE (temperature 0.1) against E(z_clean); Adam at 1e-3;
* inference: encode, block, decode both modalities (the worst case), batch 64 and batch 1.

Faults here are Gaussian noise on one modality per sample (mmguard draws from its catalogue);
their cost is small beside the convolutions in both.
"""

import argparse
import json
import statistics
import subprocess
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

H = W = 64
D, T = 18, 16
SLOPE = 0.2


def lrelu(x):
    return F.leaky_relu(x, SLOPE)


class Stage1(nn.Module):
    def __init__(self):
        super().__init__()
        c = [3, 32, 64, 64, 32]
        self.cam_enc = nn.ModuleList(nn.Conv2d(c[i], c[i + 1], 4, 2, 1) for i in range(4))
        self.cam_dec = nn.ModuleList(nn.ConvTranspose2d(c[4 - i], c[3 - i], 4, 2, 1) for i in range(4))
        self.sen_enc = nn.ModuleList([nn.Conv1d(D, 64, 3, 1, 1), nn.Conv1d(64, 64, 4, 2, 1), nn.Conv1d(64, 32, 4, 2, 1)])
        self.sen_dec = nn.ModuleList(
            [nn.ConvTranspose1d(32, 64, 4, 2, 1), nn.ConvTranspose1d(64, 64, 4, 2, 1), nn.Conv1d(64, D, 3, 1, 1)]
        )

    @staticmethod
    def chain(layers, x):
        for k, layer in enumerate(layers):
            x = layer(x)
            if k + 1 < len(layers):
                x = lrelu(x)
        return x

    def encode(self, cam, sen):
        zc = self.chain(self.cam_enc, cam).flatten(1)
        zs = self.chain(self.sen_enc, sen).flatten(1)
        return torch.cat([zc, zs], 1)

    def decode(self, z):
        lc = 32 * (H // 16) * (W // 16)
        cam = torch.sigmoid(self.chain(self.cam_dec, z[:, :lc].reshape(-1, 32, H // 16, W // 16)))
        sen = self.chain(self.sen_dec, z[:, lc:].reshape(-1, 32, T // 4))
        return cam, sen


LATENT = 32 * (H // 16) * (W // 16) + 32 * (T // 4)


class Block(nn.Module):
    def __init__(self, latent=LATENT, hidden=256):
        super().__init__()
        self.e1, self.e2 = nn.Linear(latent, hidden), nn.Linear(hidden, hidden)
        self.d1, self.d2 = nn.Linear(hidden, 64), nn.Linear(64, 2)
        sn = nn.utils.parametrizations.spectral_norm
        self.c1, self.c2 = sn(nn.Linear(hidden, hidden)), sn(nn.Linear(hidden, hidden))
        self.g = nn.Linear(hidden, 2 * latent)

    def embed(self, z):
        return self.e2(lrelu(self.e1(z)))

    def forward(self, z):
        h = self.embed(z)
        logits = self.d2(lrelu(self.d1(h)))
        c = 0.95 * (0.5 * h + 0.5 * self.c2(lrelu(self.c1(h))))
        g = self.g(c)
        keep = torch.sigmoid(g[:, z.shape[1] :])
        latent = keep * z + (1 - keep) * g[:, : z.shape[1]]
        return h, c, logits, latent


def info_nce(a, b, temperature=0.1):
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    logits = a @ b.t() / temperature
    return F.cross_entropy(logits, torch.arange(a.shape[0]))


def timings(reps, f):
    """Seconds per call of f after one warm-up, sorted (as mmguard's bench speed)."""
    f()
    times = []
    for _ in range(max(reps, 1)):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return sorted(times)


def quantile(times, q):
    return times[round((len(times) - 1) * q)]


def median_secs(reps, f):
    return quantile(timings(reps, f), 0.5)


def measure(batch=64, reps=10):
    torch.manual_seed(0)
    cam = torch.rand(batch, 3, H, W)
    sen = torch.rand(batch, D, T)
    stage1 = Stage1()
    opt1 = torch.optim.Adam(stage1.parameters(), lr=1e-3, eps=1e-8)

    def step1():
        opt1.zero_grad(set_to_none=True)
        z = stage1.encode(cam, sen)
        rc, rs = stage1.decode(z)
        loss = F.mse_loss(rc, cam) + F.mse_loss(rs, sen)
        loss.backward()
        opt1.step()

    s1 = median_secs(reps, step1)

    for p in stage1.parameters():
        p.requires_grad_(False)
    block = Block()
    opt2 = torch.optim.Adam(block.parameters(), lr=1e-3, eps=1e-8)
    with torch.no_grad():
        z_clean = stage1.encode(cam, sen)

    def step2():
        opt2.zero_grad(set_to_none=True)
        which = torch.rand(batch) < 0.5
        fc = torch.where(which[:, None, None, None], (cam + 0.1 * torch.randn_like(cam)).clamp(0, 1), cam)
        fs = torch.where(which[:, None, None], sen, sen + 0.1 * torch.randn_like(sen))
        labels = torch.stack([which.float(), (~which).float()], 1)
        with torch.no_grad():
            z_faulty = stage1.encode(fc, fs)
        h, c, logits, latent = block(z_faulty)
        rc, rs = stage1.decode(latent)
        loss = (
            F.mse_loss(latent, z_clean)
            + F.mse_loss(rc, cam)
            + F.mse_loss(rs, sen)
            + F.binary_cross_entropy_with_logits(logits, labels)
            + info_nce(c, block.embed(z_clean).detach())
        )
        loss.backward()
        opt2.step()

    s2 = median_secs(reps, step2)

    block.eval()

    def infer(c, s):
        with torch.inference_mode():
            _, _, logits, latent = block(stage1.encode(c, s))
            torch.sigmoid(logits)
            stage1.decode(latent)

    i64 = median_secs(reps, lambda: infer(cam, sen))
    i1 = timings(reps * 20, lambda: infer(cam[:1], sen[:1]))
    return {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "stage1_train_samples_per_s": batch / s1,
        "stage2_train_samples_per_s": batch / s2,
        "infer_batch64_samples_per_s": batch / i64,
        "infer_batch1_ms": quantile(i1, 0.5) * 1e3,
        "infer_batch1_p99_ms": quantile(i1, 0.99) * 1e3,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mmguard", help="path of the mmguard binary, to run its benchmark in between")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    ours, theirs = [], []
    for _ in range(args.rounds):
        theirs.append(measure(reps=args.reps))
        if args.mmguard:
            out = subprocess.run(
                [args.mmguard, "bench", "speed", "--json", "--reps", str(args.reps)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            ours.append(json.loads(out))
    keys = [
        "stage1_train_samples_per_s",
        "stage2_train_samples_per_s",
        "infer_batch64_samples_per_s",
        "infer_batch1_ms",
        "infer_batch1_p99_ms",
    ]
    med = lambda rows, k: statistics.median(r[k] for r in rows)
    if not args.mmguard:
        print(json.dumps({k: med(theirs, k) for k in keys}, indent=2))
        return
    print(f"{ours[0]['cpu']}; torch {theirs[0]['torch']}, {theirs[0]['threads']} threads; "
          f"median of {args.rounds} interleaved rounds\n")
    print("| measurement | mmguard | PyTorch | mmguard ÷ PyTorch |\n|---|---|---|---|")
    for k in keys:
        m, t = statistics.median(r["kernels"][k] for r in ours), med(theirs, k)
        ratio = t / m if k.endswith("_ms") else m / t
        print(f"| {k} | {m:.2f} | {t:.2f} | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
