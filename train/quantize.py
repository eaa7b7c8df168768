"""Static int8 quantization with torchao's PT2E flow, and the exported programs that serve the result.

The flow (``torch.ao.quantization`` is deprecated; this is its torchao successor):

1. ``torch.export`` the fp32 model with a dynamic batch dimension,
2. ``prepare_pt2e`` with the x86 Inductor quantizer (int8 activations per tensor, int8 weights per
   channel) and run a calibration subset of the train split through it,
3. ``convert_pt2e`` into a graph of reference quantize / dequantize ops around fp32 kernels,
4. optionally quantization-aware fine-tuning (``prepare_qat_pt2e``) when the post-training drop is above
   a threshold,
5. ``torch.export.save`` the converted graph as a self-contained ``model.pt2``.

The saved program loads with ``torch.export.load`` alone (no model code). Run eagerly it still computes
in fp32 between the q/dq pairs, so it is *slower* than fp32; the int8 speed comes from compiling it with
Inductor (``compile_program``), whose freezing passes fold the q/dq pairs into oneDNN int8 convolutions
with prepacked weights. The trade-off report measures both, honestly labelled.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

PROGRAM = "model.pt2"
CONFIG = "config.json"
MAX_BATCH = 4096

# Importing torchao makes torch log a deprecation warning about torchao's own enum registration on
# every command that quantizes or loads a program; it tells a user of Sluice nothing.
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)


def example_input(image_shape: list[int], batch: int = 2) -> torch.Tensor:
    """A channels-last NCHW float batch shaped like the snapshot's images (as the loaders produce)."""
    h, w, c = image_shape
    return torch.randn(batch, c, h, w).contiguous(memory_format=torch.channels_last)


def _dynamic_batch() -> tuple[dict[int, object]]:
    return ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)


def export_graph(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """The model as an ATen graph module (batch dimension dynamic), ready for prepare_pt2e."""
    return torch.export.export(model, (example,), dynamic_shapes=_dynamic_batch()).module()


def _quantizer(is_qat: bool = False):
    # Importing the quantizer module also registers torchao's Inductor int8 fusion passes.
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    quantizer = X86InductorQuantizer()
    quantizer.set_global(get_default_x86_inductor_quantization_config(is_qat=is_qat))
    return quantizer


def calibration_batches(loader: Iterable, images: int) -> list[torch.Tensor]:
    """The first ``images`` inputs of ``loader`` (a list of x batches), for calibration."""
    out, seen = [], 0
    for batch in loader:
        x = batch[0][: images - seen]
        out.append(x)
        seen += x.shape[0]
        if seen >= images:
            break
    return out


@torch.no_grad()
def quantize_ptq(model: nn.Module, calibration: list[torch.Tensor], example: torch.Tensor) -> torch.fx.GraphModule:
    """Post-training static int8 quantization of ``model`` calibrated on ``calibration`` batches."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(export_graph(model.eval(), example), _quantizer())
    for x in calibration:
        prepared(x)
    return drop_unused_parameters(convert_pt2e(prepared))


def drop_unused_parameters(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Delete the fp32 weights that conversion replaced by folded int8 constants.

    ``convert_pt2e`` leaves the original float parameters registered though no node reads them any more;
    exporting would then ship every weight twice (fp32 and int8).
    """
    used = {n.target for n in graph.graph.nodes if n.op == "get_attr"}
    for name, _ in list(graph.named_parameters()):
        if name not in used:
            owner, _, attr = name.rpartition(".")
            delattr(graph.get_submodule(owner) if owner else graph, attr)
    return graph


def quantize_qat(model: nn.Module, example: torch.Tensor, fine_tune: Callable[[nn.Module], None]) -> torch.fx.GraphModule:
    """Quantization-aware fine-tuning: fake-quantize ``model``, let ``fine_tune`` train it, convert.

    ``fine_tune`` receives the prepared graph; its ``.train()``/``.eval()`` work (they switch the exported
    batch-norm and fake-quant ops), so the trainer's ``train_one_epoch``/``evaluate`` can drive it.
    """
    from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    graph = torch.export.export(model.train(), (example,), dynamic_shapes=_dynamic_batch()).module()
    prepared = prepare_qat_pt2e(graph, _quantizer(is_qat=True))
    allow_exported_model_train_eval(prepared)
    fine_tune(prepared)
    move_exported_model_to_eval(prepared)
    with torch.no_grad():
        return drop_unused_parameters(convert_pt2e(prepared))


def export_program(module: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """An ExportedProgram of ``module`` (fp32, pruned or converted int8) with a dynamic batch dimension."""
    return torch.export.export(module, (example,), dynamic_shapes=_dynamic_batch())


def save_program(folder: Path | str, program: torch.export.ExportedProgram, config: dict) -> Path:
    """Write ``model.pt2`` and ``config.json`` (classes, image_shape, mean/std for preprocessing)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ("partial-" + PROGRAM)
    torch.export.save(program, tmp)
    tmp.replace(folder / PROGRAM)
    (folder / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder / PROGRAM


def weights_bytes(program: torch.export.ExportedProgram) -> int:
    """Bytes of every tensor the program carries (parameters, buffers, constants): the model's real size."""
    tensors = list(program.state_dict.values()) + [v for v in program.constants.values() if isinstance(v, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors)


def load_program(path: Path | str) -> nn.Module:
    """A callable module from a saved ``model.pt2`` (needs torch and torchao, not the model code)."""
    import torchao.quantization.pt2e  # noqa: F401  (registers the ops a quantized program may use)

    return torch.export.load(str(path)).module()


def compile_program(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Compile a (quantized) graph with Inductor on CPU, freezing weights so int8 kernels are used.

    The first call for a new input shape compiles (tens of seconds); later calls are fast.
    """
    import torch._inductor.config as inductor_config

    _quantizer()  # registers torchao's x86 int8 lowering passes with Inductor
    inductor_config.freezing = True
    return torch.compile(module, dynamic=False)
