"""Mixed-precision training (endolite.train.amp): the auto choice is a measurement on the
machine, explicit choices the device cannot run are refused with a reason, measuring leaves the
model untouched, and a bfloat16 run learns and says which precision it used."""

from __future__ import annotations

import json

import pytest

from endolite.errors import InvalidInput
from endolite.segment.precision import bf16_supported
from endolite.train import amp
from tests.test_train_worker import make_run, read, run_worker

torch = pytest.importorskip("torch")


def test_decide_keeps_bfloat16_only_when_clearly_faster():
    fast = amp.decide(0.30, 0.10)
    assert fast.precision == "bf16" and "0.33x" in fast.reason
    assert amp.decide(0.30, 0.28).precision == "fp32", "within 15 %: float32 stays"
    slow = amp.decide(0.30, 0.60)
    assert slow.precision == "fp32" and "not faster" in slow.reason


def test_fixed_choices_and_refusals_on_cpu(tmp_path):
    cpu = torch.device("cpu")
    assert amp.resolve_fixed("fp32", cpu).precision == "fp32"
    with pytest.raises(InvalidInput, match="fp16 needs a CUDA GPU"):
        amp.resolve_fixed("fp16", cpu)
    with pytest.raises(InvalidInput, match="precision"):
        amp.check("half")
    run = make_run(tmp_path, precision="fp8")
    from endolite.train.runfiles import load_config

    with pytest.raises(InvalidInput, match="config.json: precision must be one of"):
        load_config(run)
    if bf16_supported():
        assert amp.resolve_fixed("bf16", cpu).precision == "bf16"
        assert amp.resolve_fixed("auto", cpu) is None, "auto on a bfloat16 CPU is measured"
    else:
        assert amp.resolve_fixed("auto", cpu).precision == "fp32"


def test_measuring_leaves_weights_statistics_and_gradients_as_they_were():
    from endolite.train import model as model_mod

    net, _ = model_mod.create("resnet18", 2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batch = torch.rand(4, 3, 32, 32)
    target = torch.tensor([[1.0, 0.0]] * 4)
    fp32_s, bf16_s = amp.measure(
        net, batch, lambda logits: torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target), torch.device("cpu"), steps=1)
    assert fp32_s > 0 and bf16_s > 0
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items()), "BatchNorm stats restored"
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.skipif(not bf16_supported(), reason="no bfloat16 on this CPU")
def test_a_bfloat16_run_learns_and_reports_its_precision(tmp_path):
    run = make_run(tmp_path, epochs=4, precision="bf16")
    proc = run_worker(run)
    assert proc.returncode == 0, proc.stderr + (run / "log.txt").read_text()
    result = read(run, "result.json")
    assert result["precision"] == "bf16" and "as configured" in result["precision_reason"]
    assert result["best_val_macro_f1"] > 0.9 and result["test"]["macro_f1"] > 0.9
    assert "precision bf16" in (run / "log.txt").read_text()
    # the checkpoint stays float32
    from endolite.train.model import load_checkpoint

    model, _ = load_checkpoint(run / "best.pt")
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_auto_precision_is_measured_and_recorded(tmp_path):
    run = make_run(tmp_path, epochs=1, precision="auto")
    proc = run_worker(run)
    assert proc.returncode == 0, proc.stderr + (run / "log.txt").read_text()
    result = read(run, "result.json")
    assert result["precision"] in ("bf16", "fp32")
    assert result["precision_reason"].startswith("auto:")
    log = (run / "log.txt").read_text()
    assert f"precision {result['precision']}: auto:" in log
    if bf16_supported():       # measured: the reason quotes both step times
        assert "float32" in result["precision_reason"]
    assert json.loads((run / "config.json").read_text())["precision"] == "auto"
