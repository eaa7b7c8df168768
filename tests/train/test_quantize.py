"""PT2E int8 quantization of a model trained on real demo digits; the exported program in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from sluice.config import CompressParams, TrainParams
from train import quantize
from train.data import EvalLoader, LoaderSpec, load_data
from train.engine import evaluate
from train.compare import compare_models
from train.model import Frozen, load_model
from train.tradeoff import fine_tuner, latencies, run, write_reports

AGREEMENT = 0.95  # int8 and fp32 predict the same class on at least 95% of the test split


@pytest.fixture(scope="module")
def trained(small_snapshot, trained_fp32):
    model_dir = trained_fp32
    model, _ = load_model(model_dir)
    data = load_data(small_snapshot, LoaderSpec(batch_size=64, eval_batch_size=256))
    calibration = quantize.calibration_batches(EvalLoader(data.train.split, data.mean, data.std, batch_size=64), 256)
    return {"model": model, "data": data, "calibration": calibration, "dir": model_dir, "snapshot": small_snapshot}


@pytest.fixture(scope="module")
def int8(trained):
    """The post-training int8 graph of the trained model (quantizing takes tens of seconds: done once)."""
    example = quantize.example_input(trained["data"].manifest["image_shape"])
    return quantize.quantize_ptq(trained["model"], trained["calibration"], example)


def _predictions(fn, data) -> torch.Tensor:
    return evaluate(Frozen(fn), data.test, num_classes=data.num_classes, device="cpu").predictions


def test_calibration_subset_has_the_requested_size(trained):
    assert sum(x.shape[0] for x in trained["calibration"]) == 256


def test_int8_agrees_with_fp32_and_is_about_4x_smaller(trained, int8):
    model, data = trained["model"], trained["data"]
    example = quantize.example_input(data.manifest["image_shape"])
    agreement = float((_predictions(int8, data) == _predictions(model, data)).float().mean())
    assert agreement >= AGREEMENT, agreement
    ops = {str(n.target) for n in int8.graph.nodes if n.op == "call_function"}
    assert any("quantize_per_tensor" in op for op in ops)  # really quantized, not a float copy
    ratio = quantize.weights_bytes(quantize.export_program(model, example)) / \
        quantize.weights_bytes(quantize.export_program(int8, example))
    assert 3.0 < ratio < 4.5, ratio  # int8 weights; the fp32 originals are not shipped alongside


def test_exported_int8_program_loads_in_a_fresh_process_without_model_code(trained, int8, tmp_path):
    data = trained["data"]
    example = quantize.example_input(data.manifest["image_shape"])
    quantize.save_program(tmp_path / "int8", quantize.export_program(int8, example), {"classes": data.classes})
    x = next(iter(data.test))[0][:16]
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        expected = int8(x).argmax(1).tolist()
    script = textwrap.dedent(f"""
        import json, sys, torch
        import torchao.quantization.pt2e  # the quantized ops' library; no sluice / train import
        program = torch.export.load({str(tmp_path / 'int8' / 'model.pt2')!r}).module()
        x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True)
        with torch.no_grad():
            print(json.dumps(program(x).argmax(1).tolist()))
        print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('sluice', 'train'))))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    predicted, imported = [json.loads(line) for line in result.stdout.strip().splitlines()[-2:]]
    assert predicted == expected
    assert imported == []


def test_compare_fp32_weights_with_the_exported_int8_program(trained, int8, tmp_path):
    data = trained["data"]
    example = quantize.example_input(data.manifest["image_shape"])
    config = json.loads((trained["dir"] / "config.json").read_text())
    quantize.save_program(tmp_path / "int8", quantize.export_program(int8, example), config)
    cfg = TrainParams(snapshot=str(trained["snapshot"]), eval_batch_size=256)
    result = compare_models(trained["dir"], tmp_path / "int8", cfg)
    assert result.count == len(data.test.split)
    assert result.accuracy_a == pytest.approx(float((_predictions(trained["model"], data) == data.test.split.labels).float().mean()))
    assert result.accuracy_b == pytest.approx(float((_predictions(int8, data) == data.test.split.labels).float().mean()))
    assert (result.a_only + result.b_only) <= (1 - AGREEMENT) * result.count
    assert result.verdict


def test_quantization_aware_fine_tuning_produces_an_int8_model(trained):
    model, data = trained["model"], trained["data"]
    example = quantize.example_input(data.manifest["image_shape"])
    import copy

    qat = quantize.quantize_qat(copy.deepcopy(model), example, fine_tuner(data, epochs=1, lr=0.005))
    ops = {str(n.target) for n in qat.graph.nodes if n.op == "call_function"}
    assert any("quantize_per_tensor" in op for op in ops)
    assert not any("fake_quant" in op for op in ops)
    agreement = float((_predictions(qat, data) == _predictions(model, data)).float().mean())
    assert agreement >= 0.9, agreement


def test_latencies_are_measured_for_every_function():
    calls = {"a": 0, "b": 0}

    def make(name):
        def fn(x):
            calls[name] += 1
            return x
        return fn

    result = latencies({"a": make("a"), "b": make("b")}, torch.zeros(1), warmup=2, repeats=5)
    assert set(result) == {"a", "b"} and all(v >= 0 for v in result.values())
    assert calls == {"a": 7, "b": 7}


@pytest.mark.slow
def test_compress_stage_end_to_end_with_inductor(trained, tmp_path):
    """The whole stage on the small snapshot: every variant saved, measured and reported (compiles: minutes)."""
    cfg = CompressParams(model_dir=str(trained["dir"]), snapshot=str(trained["snapshot"]), out_dir=str(tmp_path / "m"),
                         metrics=str(tmp_path / "compress.json"), plot=str(tmp_path / "tradeoff.csv"),
                         prune_steps=2, prune_finetune_epochs=1, repeats=5)
    metrics = run(cfg)
    write_reports(metrics, cfg)
    variants = metrics["variants"]
    assert set(variants) == {"fp32", "pruned", "sparse", "int8", "pruned_int8"}
    for name in ("pruned", "sparse", "int8", "pruned_int8"):
        assert (tmp_path / "m" / name / "model.pt2").is_file()
        assert variants[name]["agreement_with_fp32"] >= 0.85
    assert "compiled_b64_ms" in variants["int8"] and "compiled_b1_ms" in variants["pruned_int8"]
    assert metrics["vs_fp32_eager"]["pruned"]["macs_reduction"] >= 2.0
    assert (tmp_path / "tradeoff.csv").read_text().count("\n") == 6
