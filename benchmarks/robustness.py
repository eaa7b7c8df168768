"""Robustness evaluation cost, per core: images/s of corruption generation and of FGSM/PGD, each against
a plain forward pass of the same batch through the same model (the baseline, measured in the same run).

The model is the demo's network (``rescnn``, width 8 by default; random weights: cost does not depend
on what it learned) on 32x32 RGB images; one torch thread unless ``--threads``.

    python benchmarks/robustness.py                  # batch 128, rescnn w8, PGD 7 steps
    python benchmarks/robustness.py --width 16 --batch 256 --steps 10

A ratio below 1 means slower than one forward pass: PGD with k steps costs about k forward+backward
passes plus one forward to score it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import best_of  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=7, help="PGD steps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import torch

    from train.attacks import fgsm, normalized, pgd
    from train.corruptions import CORRUPTIONS, SEVERITIES, corrupt
    from train.model import build_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model({"arch": "rescnn", "width": args.width, "depth": 1}, num_classes=10).eval()
    model = model.to(memory_format=torch.channels_last)
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    f = normalized(model, mean, std)
    x = torch.rand((args.batch, 3, args.size, args.size), generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (args.batch,), generator=torch.Generator().manual_seed(1))
    n = args.batch

    def forward():
        with torch.inference_mode():
            f(x)

    forward()
    t_fwd = best_of(forward, args.repeat)
    print(f"rescnn w{args.width}, batch {n} of {args.size}x{args.size}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"  baseline forward pass             : {n / t_fwd:10.0f} img/s ({1000 * t_fwd:.1f} ms per batch)")
    total_corrupt = 0.0
    for name in CORRUPTIONS:
        gen = torch.Generator().manual_seed(2)
        t = best_of(lambda: [corrupt(x, name, s, gen) for s in SEVERITIES], args.repeat) / len(SEVERITIES)
        total_corrupt += t
        print(f"  corruption {name:<22} : {n / t:10.0f} img/s  = {t_fwd / t:6.2f}x the forward pass")
    mean_t = total_corrupt / len(CORRUPTIONS)
    print(f"  corruption generation, mean       : {n / mean_t:10.0f} img/s  = {t_fwd / mean_t:6.2f}x the forward pass")
    t_fgsm = best_of(lambda: fgsm(f, x, y, 0.03), args.repeat)
    print(f"  FGSM (1 step)                     : {n / t_fgsm:10.0f} img/s  = {t_fwd / t_fgsm:6.2f}x the forward pass")
    gen = torch.Generator().manual_seed(3)
    t_pgd = best_of(lambda: pgd(f, x, y, 0.03, steps=args.steps, generator=gen), args.repeat)
    print(f"  {f'PGD ({args.steps} steps)':<34}: {n / t_pgd:10.0f} img/s  = {t_fwd / t_pgd:6.2f}x the forward pass "
          f"({t_pgd / t_fwd / args.steps:.2f} forward passes per step)")
    # the default insight grid: 6 corruptions x 5 severities + 2 attacks x 3 eps, each scored by a forward
    grid = len(CORRUPTIONS) * len(SEVERITIES) * (mean_t + t_fwd) + 3 * (t_fgsm + t_pgd + 2 * t_fwd)
    print(f"  default robustness grid (fp32)    : {n / grid:10.1f} test img/s "
          f"({grid / t_fwd:.0f} forward passes' worth per image batch)")


if __name__ == "__main__":
    main()
