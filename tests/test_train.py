"""vitzoo.train on real image files: the paper's recipe as closed forms, and fine-tuning that learns, repeats
and resumes bit for bit.

The data is a small ImageFolder of noisy red, green and blue PNGs (learnable in a few dozen steps); the models are
the `testing` architecture with its original initialisation, and a ViT-Ti/16 written as an original vit_jax .npz
(tests/jax_writer.py) and converted on load.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax_writer import vit_jax_arrays
from PIL import Image
from safetensors import safe_open

import vitzoo
from vitzoo.errors import ConfigError, VitzooError
from vitzoo.evaluate.accuracy import evaluate
from vitzoo.evaluate.data import collate, image_folder
from vitzoo.train.augment import ASPECT_RANGE, TrainImages, augment, inception_crop, item_rng
from vitzoo.train.batches import micro_batches, step_images
from vitzoo.train.loop import Interrupted, StepReport, accumulate_gradients, train
from vitzoo.train.recipe import Recipe, steps_for_epochs
from vitzoo.train.run import prepare, resume
from vitzoo.train.schedule import clip_global_norm, learning_rate, sgd_momentum
from vitzoo.train.state import state_path
from vitzoo.weights.checkpoint import save_vitzoo
from vitzoo.zoo.preprocess import Preprocess

COLOURS = {"blue": (50, 60, 200), "green": (40, 180, 60), "red": (200, 40, 40)}  # sorted: label order
RECIPE = Recipe(steps=16, lr=0.03, warmup_steps=2, batch_size=12, accum=2, img_size=32, dtype="fp32")


def colour_folder(root, per_class: int, seed: int):
    """``root/CLASS/i.png``: 24x24 images of a class colour plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 40, size=(24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    return colour_folder(root / "train", 16, 0), colour_folder(root / "val", 8, 1)


def write_testing(path):
    """The `testing` architecture (224 px, 10 classes) with the original initialisation, as a vitzoo file."""
    torch.manual_seed(0)
    model = vitzoo.create("testing")
    return save_vitzoo(path, model.state_dict(), model.config)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_testing(tmp_path_factory.mktemp("src") / "testing.safetensors")


def _weights(path) -> dict[str, torch.Tensor]:
    return vitzoo.load(path).state_dict()


# -- the recipe's closed forms ---------------------------------------------------------------------------


def test_learning_rate_is_warmup_then_cosine():
    lr = lambda s: learning_rate(s, base=0.01, total=110, warmup=10)  # noqa: E731
    assert lr(1) == pytest.approx(0.001) and lr(5) == pytest.approx(0.005) and lr(10) == pytest.approx(0.01)
    assert lr(60) == pytest.approx(0.005)  # half-way through the decay: cos(pi/2) = 0
    assert lr(35) == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr(110) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(1, base=0.03, total=4, warmup=0) == pytest.approx(0.03 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert Recipe(steps=10_000).warmup == 500 and Recipe(steps=300).warmup == 30  # vit_jax's 500, capped


def test_clipping_matches_the_global_norm_closed_form():
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(5, 3, generator=gen) * 4, torch.randn(7, generator=gen)]
    norm = float(torch.cat([g.flatten() for g in grads]).norm())
    expected = [g * (1.0 / norm) for g in grads]
    assert clip_global_norm(grads, 1.0) == pytest.approx(norm, rel=1e-6)
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e)
    assert float(torch.cat([g.flatten() for g in grads]).norm()) == pytest.approx(1.0, rel=1e-6)
    small = [torch.full((3,), 0.1)]
    clip_global_norm(small, 1.0)
    assert torch.equal(small[0], torch.full((3,), 0.1))  # under the limit: untouched


def test_sgd_momentum_equals_torch_sgd():
    gen = torch.Generator().manual_seed(1)
    p_ours, p_torch = torch.randn(4, 3, generator=gen), None
    p_torch = torch.nn.Parameter(p_ours.clone())
    opt = torch.optim.SGD([p_torch], lr=0.1, momentum=0.9, foreach=False)
    buf = torch.zeros_like(p_ours)
    for step in range(4):
        g = torch.randn(4, 3, generator=gen)
        lr = 0.1 * (step + 1)
        for group in opt.param_groups:
            group["lr"] = lr
        p_torch.grad = g.clone()
        opt.step()
        sgd_momentum([p_ours], [g], [buf], lr, 0.9)
        torch.testing.assert_close(p_ours, p_torch.detach(), rtol=1e-6, atol=1e-7)


def test_one_steps_gradients_equal_plain_autograd(folders):
    """Accumulated micro-batch gradients (scaled sums) equal autograd of the mean loss over the whole batch."""
    torch.manual_seed(0)
    model = vitzoo.create("testing", img_size=32, num_classes=3)
    data = TrainImages(image_folder(folders[0]), Preprocess(32, resize="tf"), seed=0)
    keys = step_images(1, num_images=len(data), batch_size=6, seed=0)
    micro = [collate([data[k] for k in keys[:3]]), collate([data[k] for k in keys[3:]])]
    ce, count = accumulate_gradients(model, micro, scale=1 / 6, device=torch.device("cpu"))
    ours = {n: p.grad.clone() for n, p in model.named_parameters()}
    images = torch.cat([m.images for m in micro])
    labels = torch.cat([m.labels for m in micro])
    model.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    assert count == 6 and ce / 6 == pytest.approx(loss.item(), rel=1e-5)
    for name, p in model.named_parameters():
        torch.testing.assert_close(ours[name], p.grad, rtol=1e-4, atol=1e-7, msg=name)


# -- augmentation and batches ----------------------------------------------------------------------------


def test_inception_crop_stays_in_the_image_with_the_originals_ranges():
    rng = np.random.default_rng(0)
    for _ in range(300):
        left, top, w, h = inception_crop(40, 30, rng)
        assert left >= 0 and left + w <= 40 and top >= 0 and top + h <= 30
        assert 0.04 * 1200 <= w * h <= 1200
        assert ASPECT_RANGE[0] - 0.1 <= w / h <= ASPECT_RANGE[1] + 0.1  # rounding to whole pixels
    assert inception_crop(1, 1, np.random.default_rng(0)) == (0, 0, 1, 1)


def test_augmentation_is_seeded_per_image_and_flips_half_the_time():
    image = Image.fromarray(np.arange(24 * 24 * 3, dtype=np.uint8).reshape(24, 24, 3))
    pp = Preprocess(16, resize="tf")
    a, b = augment(image, pp, item_rng(0, 3, 7)), augment(image, pp, item_rng(0, 3, 7))
    assert torch.equal(a, b) and a.shape == (3, 16, 16)
    assert not torch.equal(a, augment(image, pp, item_rng(0, 4, 7)))
    flips = 0
    for i in range(200):  # the draws ``augment`` makes: the crop, then the flip
        rng = item_rng(1, 0, i)
        inception_crop(24, 24, rng)
        flips += rng.random() < 0.5
    assert 70 < flips < 130


def test_every_image_once_per_epoch_and_micro_batches_partition_a_step():
    n, batch = 50, 12
    seen = [k for s in range(1, 5) for k in step_images(s, num_images=n, batch_size=batch, seed=3)]
    assert len(set(seen)) == 48 and {e for e, _ in seen} == {0}  # 4 whole batches of epoch 0, remainder dropped
    assert step_images(5, num_images=n, batch_size=batch, seed=3)[0][0] == 1
    step = step_images(2, num_images=n, batch_size=batch, seed=3)
    parts = [micro_batches(2, num_images=n, batch_size=batch, accum=3, seed=3, rank=r, world_size=2) for r in (0, 1)]
    assert [len(m) for p in parts for m in p] == [2] * 6 and [k for p in parts for m in p for k in m] == step


def test_recipe_rejects_bad_values():
    with pytest.raises(ConfigError, match="does not split into 5"):
        Recipe(batch_size=12, accum=5)
    with pytest.raises(ConfigError, match="warmup-steps"):
        Recipe(steps=10, warmup_steps=10)
    with pytest.raises(ConfigError, match="fewer than one batch"):
        steps_for_epochs(2, 10, 12)
    with pytest.raises(ConfigError, match="on each of 4 processes"):
        Recipe(batch_size=12, accum=2).per_rank(4)


# -- fine-tuning ---------------------------------------------------------------------------------------------


def test_finetuning_testing_learns_from_a_zero_head(folders, source, tmp_path):
    run = prepare(source, folders[0], tmp_path / "ft.safetensors", RECIPE, val_dir=folders[1])
    assert not run.model.head.weight.any() and not run.model.head.bias.any()  # exactly zero
    assert run.model.head.weight.shape == (3, 10) and run.info.classes == ("blue", "green", "red")
    loaded = vitzoo.load(source, img_size=32, num_classes=3)  # the load-time resample (vit_jax's), 14x14 -> 2x2
    assert torch.equal(run.model.pos_embed, loaded.pos_embed)
    chance = evaluate(run.model.eval(), run.info.preprocess, run.val).top1
    assert chance == pytest.approx(100 / 3)  # a zero head predicts class 0 everywhere
    seen = []
    result = train(run, workers=0, progress=seen.append)
    steps = [r for r in seen if isinstance(r, StepReport)]
    assert [r.step for r in steps] == list(range(1, 17)) and steps[0].lr == pytest.approx(0.015)
    assert result.history[-1]["top1"] >= 90 and result.loss < steps[0].loss
    assert not state_path(result.out).exists()
    model = vitzoo.load(result.out)  # the output is a vitzoo checkpoint naming its classes and preprocessing
    assert model.preprocess == Preprocess(32, resize="tf") and model.preprocess_source == "stored in the file"
    with safe_open(str(result.out), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["labels"]) == ["blue", "green", "red"] and meta["finetuned_from"] == str(source)
    assert model.checkpoint.labels == ("blue", "green", "red") and model.checkpoint.label_space == "custom"
    assert evaluate(model, model.preprocess, image_folder(folders[1])).top1 == pytest.approx(result.history[-1]["top1"])


def test_a_converted_vit_ti_checkpoint_learns(folders, tmp_path):
    torch.manual_seed(0)
    ti = vitzoo.create("vit-ti16")
    npz = tmp_path / "ViT-Ti_16.npz"
    np.savez(npz, **vit_jax_arrays(ti.state_dict(), ti.config.num_heads))
    recipe = Recipe(steps=12, lr=0.01, warmup_steps=2, batch_size=12, accum=1, img_size=32, dtype="fp32")
    run = prepare(npz, folders[0], tmp_path / "ti.safetensors", recipe, val_dir=folders[1])
    assert run.model.config.width == 192 and not run.model.head.weight.any()
    assert torch.equal(run.model.pos_embed, vitzoo.load(npz, img_size=32, num_classes=3).pos_embed)
    assert evaluate(run.model.eval(), run.info.preprocess, run.val).top1 == pytest.approx(100 / 3)  # chance
    result = train(run, workers=0)
    assert result.history[-1]["top1"] >= 90
    assert vitzoo.load(result.out).config.width == 192


def test_same_seed_same_weights_and_resume_is_bit_identical(folders, source, tmp_path):
    recipe = Recipe(steps=8, lr=0.03, warmup_steps=2, batch_size=12, accum=2, img_size=32, dtype="fp32")
    a = train(prepare(source, folders[0], tmp_path / "a.safetensors", recipe, val_dir=folders[1]), workers=0)
    b = train(prepare(source, folders[0], tmp_path / "b.safetensors", recipe, val_dir=folders[1]), workers=0)

    def stop_at_3(report) -> None:
        if isinstance(report, StepReport) and report.step == 3:
            raise KeyboardInterrupt

    out = tmp_path / "c.safetensors"
    with pytest.raises(Interrupted) as stopped:
        train(prepare(source, folders[0], out, recipe, val_dir=folders[1]), workers=0, progress=stop_at_3)
    assert stopped.value.step == 3 and state_path(out).exists() and not out.exists()
    with pytest.raises(VitzooError, match="interrupted run"):
        prepare(source, folders[0], out, recipe)
    again = resume(out)
    assert again.step == 3 and len(again.history) == 0
    c = train(again, workers=1)  # another worker count: the same images, the same augmentation
    wa, wb, wc = _weights(a.out), _weights(b.out), _weights(c.out)
    assert all(torch.equal(wa[k], wb[k]) and torch.equal(wa[k], wc[k]) for k in wa)
    assert c.history == a.history and c.resumed_at == 3 and not state_path(out).exists()
    other = train(prepare(source, folders[0], tmp_path / "d.safetensors", Recipe(**{**recipe.__dict__, "seed": 1})),
                  workers=0)  # fmt: skip
    assert not torch.equal(_weights(other.out)["head.weight"], wa["head.weight"])


def test_a_resumed_run_needs_the_same_data(folders, source, tmp_path):
    data = colour_folder(tmp_path / "train", 4, 0)
    out = tmp_path / "e.safetensors"
    recipe = Recipe(steps=4, batch_size=6, accum=1, img_size=32, dtype="fp32", warmup_steps=0)

    def stop(report) -> None:
        if isinstance(report, StepReport):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        train(prepare(source, data, out, recipe), workers=0, progress=stop)
    (data / "red" / "0.png").unlink()
    with pytest.raises(VitzooError, match="changed since the run started"):
        resume(out)


def test_bf16_autocast_run(folders, source, tmp_path):
    recipe = Recipe(steps=2, batch_size=6, accum=1, img_size=32, dtype="bf16", warmup_steps=0)
    result = train(prepare(source, folders[0], tmp_path / "bf.safetensors", recipe), workers=0)
    assert result.info.recipe.dtype == "bf16" and math.isfinite(result.loss)
    assert vitzoo.load(result.out).pos_embed.dtype == torch.float32  # fp32 weights; autocast only computes in bf16


def test_a_failure_while_writing_the_model_keeps_every_step(folders, source, tmp_path, monkeypatch):
    import vitzoo.train.loop as loop
    from vitzoo.weights.checkpoint import OutputError

    recipe = Recipe(steps=3, batch_size=6, accum=1, img_size=32, dtype="fp32", warmup_steps=0)
    out = tmp_path / "f.safetensors"
    real = loop.save_finetuned

    def disk_full(*args, **kwargs):
        raise OutputError(f"{out}: writing failed (No space left on device)")

    monkeypatch.setattr(loop, "save_finetuned", disk_full)
    with pytest.raises(OutputError):
        train(prepare(source, folders[0], out, recipe), workers=0)
    monkeypatch.setattr(loop, "save_finetuned", real)
    again = resume(out)
    assert again.step == 3 and not out.exists()
    done = train(again, workers=0)
    whole = train(prepare(source, folders[0], tmp_path / "g.safetensors", recipe), workers=0)
    assert done.steps == 3 and all(torch.equal(v, _weights(whole.out)[k]) for k, v in _weights(out).items())


def test_ctrl_c_during_a_validation_is_resumed_with_that_validation(folders, source, tmp_path, monkeypatch):
    import vitzoo.parallel.sharded as sharded

    recipe = Recipe(steps=8, lr=0.03, warmup_steps=2, batch_size=12, accum=2, img_size=32, dtype="fp32")
    whole = train(prepare(source, folders[0], tmp_path / "a.safetensors", recipe, val_dir=folders[1]), workers=0)
    real, calls = sharded.evaluate_sharded, []

    def second_validation_interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = tmp_path / "b.safetensors"
    monkeypatch.setattr(sharded, "evaluate_sharded", second_validation_interrupted)
    with pytest.raises(Interrupted) as stopped:
        train(prepare(source, folders[0], out, recipe, val_dir=folders[1]), workers=0)
    monkeypatch.setattr(sharded, "evaluate_sharded", real)
    assert stopped.value.step == 8  # 4 steps an epoch: stopped while validating after the last one
    again = train(resume(out), workers=0)
    assert again.history == whole.history and len(again.history) == 2
    assert all(torch.equal(v, _weights(whole.out)[k]) for k, v in _weights(out).items())
