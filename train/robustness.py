"""How a model breaks: accuracy under common corruptions and adversarial attacks, for several models
(fp32 and its compressed variants) on the same images.

``evaluate_variants`` returns the document written to ``reports/insight/robustness.json``::

    {variant: {corruption: {severity: accuracy}},
     "adversarial": {variant: {attack: {eps: accuracy}}}}

(severities and epsilons are JSON string keys; eps "0" is the clean accuracy, the start of the
curve). Every variant sees the same corrupted pixels (one generator seed per corruption and
severity). Attacks are white-box for a model with usable input gradients (fp32, pruned, sparse);
a model without (int8) gets the fp32 model's adversarial examples (a transfer attack) — ``summary``
says which per variant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from train.attacks import ATTACKS, has_gradients, normalized
from train.corruptions import corrupt

Model = Callable[[torch.Tensor], torch.Tensor]
WHITE_BOX = "white-box"


@dataclass(frozen=True)
class Settings:
    corruptions: Sequence[str] = ("gaussian_noise", "gaussian_blur", "jpeg", "brightness", "contrast", "pixelate")
    severities: Sequence[int] = (1, 2, 3, 4, 5)
    attacks: Sequence[str] = ("fgsm", "pgd")
    eps: Sequence[float] = (0.01, 0.03, 0.1)
    pgd_steps: int = 7
    batch_size: int = 128
    seed: int = 0
    reference: str = "fp32"  # the white-box model whose adversarial examples transfer to gradient-free ones
    summary_eps: float | None = None  # the eps of the summary's attack columns (default: the middle one)
    extra: dict = field(default_factory=dict)


def eps_key(eps: float) -> str:
    return f"{eps:g}"


def _batches(x: torch.Tensor, y: torch.Tensor, size: int):
    for lo in range(0, len(y), size):
        yield lo, x[lo:lo + size], y[lo:lo + size]


def accuracy(f: Model, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Top-1 accuracy of ``f`` (a function of [0, 1] pixels) on ``x``."""
    right = 0
    with torch.no_grad():
        for _, xb, yb in _batches(x, y, batch_size):
            right += int((f(xb).argmax(1) == yb).sum())
    return right / max(len(y), 1)


def corruption_accuracy(fns: dict[str, Model], x: torch.Tensor, y: torch.Tensor, s: Settings) -> dict[str, dict]:
    """{variant: {corruption: {severity: accuracy}}}; each corrupted batch is made once and shared."""
    right = {v: {c: {str(sev): 0 for sev in s.severities} for c in s.corruptions} for v in fns}
    for c_i, name in enumerate(s.corruptions):
        for sev in s.severities:
            gen = torch.Generator(device=x.device).manual_seed(s.seed * 1000 + c_i * 10 + sev)
            for _, xb, yb in _batches(x, y, s.batch_size):
                xc = corrupt(xb, name, sev, gen)
                with torch.no_grad():
                    for v, f in fns.items():
                        right[v][name][str(sev)] += int((f(xc).argmax(1) == yb).sum())
    n = max(len(y), 1)
    return {v: {c: {k: round(r / n, 6) for k, r in sev.items()} for c, sev in cs.items()} for v, cs in right.items()}


def adversarial_accuracy(fns: dict[str, Model], x: torch.Tensor, y: torch.Tensor, s: Settings,
                         modes: dict[str, str]) -> dict[str, dict]:
    """{variant: {attack: {eps: accuracy}}}: white-box variants are attacked themselves, the others get
    the reference model's adversarial examples (``modes[v]`` names which)."""
    clean = {v: accuracy(f, x, y, s.batch_size) for v, f in fns.items()}
    out = {v: {a: {"0": round(clean[v], 6)} for a in s.attacks} for v in fns}
    for a_i, attack in enumerate(s.attacks):
        for e_i, eps in enumerate(s.eps):
            right = dict.fromkeys(fns, 0)
            for lo, xb, yb in _batches(x, y, s.batch_size):
                crafted: dict[str, torch.Tensor] = {}
                for v, f in fns.items():
                    source = v if modes[v] == WHITE_BOX else s.reference
                    if source not in crafted:  # PGD's random start: the same for every model
                        gen = torch.Generator(device=x.device).manual_seed(
                            ((s.seed * 31 + a_i) * 31 + e_i) * 1_000_003 + lo)
                        kw = {"steps": s.pgd_steps, "generator": gen} if attack == "pgd" else {}
                        crafted[source] = ATTACKS[attack](fns[source], xb, yb, eps, **kw)
                    with torch.no_grad():
                        right[v] += int((f(crafted[source]).argmax(1) == yb).sum())
            for v in fns:
                out[v][attack][eps_key(eps)] = round(right[v] / max(len(y), 1), 6)
    return out


def attack_modes(fns: dict[str, Model], example: torch.Tensor, reference: str) -> dict[str, str]:
    modes = {}
    for v, f in fns.items():
        modes[v] = WHITE_BOX if has_gradients(f, example) else f"transfer from {reference}"
    if modes.get(reference, WHITE_BOX) != WHITE_BOX:
        raise ValueError(f"the reference model '{reference}' has no input gradients; it cannot craft attacks")
    return modes


def evaluate_variants(models: dict[str, Model], images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor,
                      std: torch.Tensor, settings: Settings | None = None) -> tuple[dict, dict]:
    """Robustness of every model (taking normalised input) on ``images`` (uint8 NHWC) with ``labels``.
    Returns (the robustness.json document, the per-variant summary)."""
    s = settings or Settings()
    if s.reference not in models and s.attacks:
        raise ValueError(f"the reference model '{s.reference}' is not among {list(models)}")
    x = images.permute(0, 3, 1, 2).float().div(255).contiguous()
    y = labels.long()
    fns = {v: normalized(m, mean, std) for v, m in models.items()}
    doc: dict = corruption_accuracy(fns, x, y, s)
    modes = attack_modes(fns, x[:2], s.reference) if s.attacks else {}
    doc["adversarial"] = adversarial_accuracy(fns, x, y, s, modes) if s.attacks else {}
    return doc, summarize(doc, s, modes)


def summarize(doc: dict, s: Settings, modes: dict[str, str]) -> dict:
    """Per variant: clean accuracy, mean corruption accuracy (over corruptions and severities), mean per
    corruption, and each attack's accuracy at the summary eps, with how the attack was made."""
    eps = s.summary_eps if s.summary_eps is not None else (sorted(s.eps)[len(s.eps) // 2] if s.eps else None)
    out = {}
    for v, cs in doc.items():
        if v == "adversarial":
            continue
        adv = doc["adversarial"].get(v, {})
        row: dict = {}
        if adv:
            row["clean_accuracy"] = next(iter(adv.values()))["0"]
        per = {c: sum(sev.values()) / len(sev) for c, sev in cs.items() if sev}
        row["corruption_accuracy"] = round(sum(per.values()) / len(per), 6) if per else None
        row |= {f"{c}_accuracy": round(a, 6) for c, a in per.items()}
        if eps is not None and adv:
            for attack, curve in adv.items():
                row[f"{attack}_accuracy"] = curve.get(eps_key(eps))
            row["attack_eps"] = eps
            row["attack"] = modes.get(v, WHITE_BOX)
        out[v] = row
    return out
