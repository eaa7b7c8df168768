"""Commands ``sluice train`` (launches torchrun) and ``sluice compare MODEL_A MODEL_B``."""

from __future__ import annotations

import json
import os
import sys

from sluice.errors import InputError

TRAIN_EPILOG = """\
Single node: `sluice train` runs `torchrun --standalone --nproc_per_node=<train.processes> -m train.ddp`.
Multi-node: run on every node `sluice train --nnodes 2 --rdzv-endpoint HOST:29400 --rdzv-id JOB`
(torchrun's c10d rendezvous; the same snapshot must be at train.snapshot on each node).
Fault tolerance: `--max-restarts K` restarts all workers after a failure; with --resume they continue
from the newest complete checkpoint. SIGTERM makes the workers checkpoint, then exit 143.
"""


def register(sub) -> None:
    t = sub.add_parser("train", help="train the classifier on the snapshot with torchrun DDP",
                       description="Train on train.snapshot with DistributedDataParallel (gloo on CPU, NCCL on "
                                   "GPU); every setting is in params.yaml's train section.",
                       epilog=TRAIN_EPILOG, formatter_class=_raw())
    t.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    t.add_argument("--processes", type=int, metavar="N", help="processes on this node (default train.processes)")
    t.add_argument("--max-restarts", type=int, default=0, metavar="K", help="torchrun worker-group restarts (default 0)")
    t.add_argument("--nnodes", default="1", help="nodes (torchrun --nnodes, e.g. 2 or 1:4); default 1")
    t.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="rendezvous endpoint for multi-node training")
    t.add_argument("--rdzv-id", default="sluice-train", help="rendezvous job id (same on every node)")
    t.set_defaults(func=_train)

    c = sub.add_parser("compare", help="compare two saved models on the same test set (McNemar's test)",
                       description="Evaluate MODEL_A and MODEL_B on the same snapshot split and test whether their "
                                   "accuracies differ (McNemar). A model is a folder with config.json and "
                                   "either model.pt (sluice train: models/fp32) or model.pt2 (the compress "
                                   "stage: models/pruned, models/int8, models/pruned_int8).")
    c.add_argument("model_a", metavar="MODEL_A")
    c.add_argument("model_b", metavar="MODEL_B")
    c.add_argument("--split", choices=["test", "val"], default="test")
    c.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    c.add_argument("--snapshot", help="snapshot folder (default train.snapshot)")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.add_argument("--insight", action="store_true",
                   help="also robustness (corruptions, FGSM/PGD; insight.robustness settings) and per-group metrics "
                        "(class, source) of both models side by side (docs/insight.md)")
    c.set_defaults(func=_compare)


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def torchrun_args(processes: int, *, resume: bool = False, max_restarts: int = 0, nnodes: str = "1",
                  rdzv_endpoint: str | None = None, rdzv_id: str = "sluice-train") -> list[str]:
    """The ``torchrun`` arguments that launch ``train.ddp`` on this node."""
    args = [f"--nproc_per_node={processes}", f"--max-restarts={max_restarts}"]
    if rdzv_endpoint:
        args += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id={rdzv_id}"]
    else:
        if nnodes != "1":
            raise InputError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the same on every node)")
        args.append("--standalone")  # a free local port: parallel runs on one machine do not collide
    return args + ["-m", "train.ddp"] + (["--resume"] if resume else [])


def per_gpu(processes: int, device: str) -> int:
    """The processes to start on this node: at most one per GPU when training on CUDA (NCCL refuses two
    ranks on one GPU), so the CPU-sized default of 2 runs on a one-GPU machine; said when it changes."""
    import torch

    gpus = torch.cuda.device_count() if device != "cpu" and torch.cuda.is_available() else 0
    if gpus and processes > gpus:
        print(f"[train] {processes} processes asked on a node with {gpus} GPU(s): starting {gpus}, one per GPU "
              f"(set train.processes: {gpus} to silence this)", file=sys.stderr, flush=True)
        return gpus
    return processes


def _train(args) -> int:
    from sluice import snapshot_store
    from sluice.config import load_params

    cfg = load_params().train
    manifest = snapshot_store.read_manifest(cfg.snapshot)  # a missing snapshot fails here, in one line
    if "train" not in manifest.get("splits", {}):
        raise InputError(f"{cfg.snapshot}: snapshot has no train split")
    classes = manifest.get("classes") or []
    if len(classes) < 2:  # one class trains to accuracy 1.0: a figure that says nothing, printed as if it did
        raise InputError(f"{cfg.snapshot}: the snapshot has {len(classes)} class{'' if len(classes) == 1 else 'es'} "
                         f"({', '.join(map(str, classes)) or 'no labelled image'}): a classifier needs two or more to "
                         "tell apart; add images of another class (a class folder, labels, crowd votes) and run again")
    # Checked here, once, before any process starts: a corrupt shard is one line and exit 4, not a worker's
    # failure relayed by torchrun. The ranks check again and find the record this leaves (the fast path).
    snapshot_store.verify_snapshot(cfg.snapshot)
    processes = args.processes or cfg.processes
    if processes < 1:
        raise InputError(f"--processes must be >= 1 (got {processes})")
    processes = per_gpu(processes, cfg.device)
    if args.resume:
        _check_resume(cfg, manifest, None if args.rdzv_endpoint else processes)
    targs = torchrun_args(processes, resume=args.resume, max_restarts=args.max_restarts, nnodes=args.nnodes,
                          rdzv_endpoint=args.rdzv_endpoint, rdzv_id=args.rdzv_id)
    os.environ["OMP_NUM_THREADS"] = str(cfg.threads_per_process)
    print("[train] torchrun " + " ".join(targs), file=sys.stderr, flush=True)
    return launch(targs)


def launch(targs: list[str]) -> int:
    """Run torchrun's launcher in this process and turn its failures into one line and an exit code."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    from train.ddp import EXIT_SIGTERM

    try:
        run(parse_args(targs))
    except SignalException as err:
        print(f"sluice: train stopped by signal {int(err.sigval)}; the workers checkpointed: continue with "
              "`sluice train --resume`", file=sys.stderr)
        return 128 + int(err.sigval)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        if failure.exitcode == 2:  # a user error the worker already printed as one line
            return 2
        if failure.exitcode == EXIT_SIGTERM:
            print("sluice: train stopped by SIGTERM after a checkpoint: continue with `sluice train --resume`",
                  file=sys.stderr)
            return EXIT_SIGTERM
        print(f"sluice: error: training failed: rank {rank} exited with code {failure.exitcode} "
              "(its traceback is above)", file=sys.stderr)
        return 1
    return 0


def _check_resume(cfg, manifest: dict, world_size: int | None) -> None:
    """Refuse an incompatible checkpoint before starting processes (the workers check again)."""
    from train.checkpoints import check_resumable, complete_checkpoints, load_checkpoint

    found = complete_checkpoints(cfg.checkpoint_dir)
    if found:
        state = load_checkpoint(found[-1])
        check_resumable(state, cfg, manifest.get("content_hash", ""), world_size or state["world_size"], found[-1])


def _compare(args) -> int:
    from sluice.config import load_params
    from train.compare import compare_models

    if not 0 < args.alpha < 1:
        raise InputError(f"--alpha must be between 0 and 1 (got {args.alpha})")
    params = load_params()
    result = compare_models(args.model_a, args.model_b, params.train, split=args.split, alpha=args.alpha,
                            snapshot_dir=args.snapshot)
    insight = None
    if args.insight:
        from train.compare_insight import compare_insight

        insight = compare_insight(args.model_a, args.model_b, params, split=args.split, snapshot_dir=args.snapshot)
    if args.json:
        print(json.dumps({**result.as_dict(), **({"insight": insight} if insight else {})}, indent=2))
        return 0
    print(f"{args.split}: {result.count} images\n"
          f"  A {args.model_a}: accuracy {result.accuracy_a:.4f}\n"
          f"  B {args.model_b}: accuracy {result.accuracy_b:.4f}\n"
          f"  only A right: {result.a_only}   only B right: {result.b_only}\n"
          f"  McNemar ({result.test}): statistic {result.statistic:g}, p = {result.p_value:.4g}\n"
          f"  verdict: {result.verdict}")
    if insight:
        from train.compare_insight import render

        print(render(insight))
    return 0
