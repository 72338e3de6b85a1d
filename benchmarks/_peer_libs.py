"""The peer side of ``peers.py``: the PyTorch twin of the C&W net and one runner per peer library.

Every runner is ``(attack spec, problem) -> call`` where ``call()`` attacks the whole batch once
and returns the adversarial images as the library hands them back (synchronised with the device,
so that a timing around ``call()`` covers the work). The peers are benchmark-only dependencies
(``benchmarks/requirements-peers.txt``); :func:`available` says which ones import here.

Library calls follow each library's documented API (torchattacks 3.5, Foolbox 3.3, ART 1.20).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import numpy as np

# The peer libraries and the module each needs (a row is skipped when it does not import).
MODULES = {
    "torchattacks": ("torch", "torchattacks"),
    "foolbox-pt": ("torch", "foolbox", "eagerpy"),
    "foolbox-jax": ("foolbox", "eagerpy"),
    "art": ("torch", "art"),
}


def missing(lib: str) -> str | None:
    """The first module ``lib`` needs that does not import here (None: all import)."""
    for name in MODULES.get(lib, ()):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 (any import failure means: skip the row)
            return name
    return None


def torch_twin(seed: int = 0, channels: int = 3, side: int = 32):
    """The C&W net in PyTorch (NCHW) for ``side``×``side``×``channels`` images (default: the
    CIFAR-10 one), randomly initialised under ``manual_seed(seed)``.

    Layer names equal the Flax ``CWNet``'s (conv1..conv4, fc1..fc3), so jaxadv's
    ``from_torch_state_dict`` converts its state dict with no name map.
    """
    import torch
    from torch import nn

    flat = ((side - 4) // 2 - 4) // 2  # two 3×3 valid convs, a 2×2 pool, twice

    class TorchCWNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, 32, 3)
            self.conv2 = nn.Conv2d(32, 32, 3)
            self.conv3 = nn.Conv2d(32, 64, 3)
            self.conv4 = nn.Conv2d(64, 64, 3)
            self.fc1 = nn.Linear(64 * flat * flat, 200)
            self.fc2 = nn.Linear(200, 200)
            self.fc3 = nn.Linear(200, 10)

        def forward(self, x):
            relu, pool = torch.relu, torch.nn.functional.max_pool2d
            x = pool(relu(self.conv2(relu(self.conv1(x)))), 2)
            x = pool(relu(self.conv4(relu(self.conv3(x)))), 2)
            x = torch.flatten(x, 1)
            return self.fc3(relu(self.fc2(relu(self.fc1(x)))))

    torch.manual_seed(seed)
    model = TorchCWNet()
    # He (Kaiming-uniform, ReLU gain) weights: PyTorch's default init shrinks the activations
    # layer by layer until the logits are the last bias and every input gets the same class.
    for layer in model.children():
        nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
    return model.eval()


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _synced(fn: Callable[[], Any], device: str) -> Callable[[], Any]:
    def call():
        out = fn()
        _sync(device)
        return out

    return call


def to_nhwc(x: Any) -> np.ndarray:
    """A peer's adversarial batch (torch NCHW, numpy NCHW, or a JAX NHWC array) as numpy NHWC."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return x if x.shape[-1] == 3 else np.transpose(x, (0, 2, 3, 1))


# -- torchattacks (Harry24k/adversarial-attacks-pytorch) ---------------------------------------


def torchattacks_runner(spec, problem) -> Callable[[], Any] | None:
    import torchattacks

    model, x, y, dev = problem["torch_model"], problem["x_t"], problem["y_t"], problem["torch_dev"]
    if spec.kind == "pgd-linf":
        atk = torchattacks.PGD(model, eps=spec.eps, alpha=spec.step, steps=spec.steps,
                               random_start=False)
    elif spec.kind == "pgd-l2":
        atk = torchattacks.PGDL2(model, eps=spec.eps, alpha=spec.step, steps=spec.steps,
                                 random_start=False)
    elif spec.kind == "mi-fgsm":
        atk = torchattacks.MIFGSM(model, eps=spec.eps, alpha=spec.step, steps=spec.steps,
                                  decay=spec.decay)
    elif spec.kind == "cw-l2":
        atk = torchattacks.CW(model, c=spec.const, kappa=0.0, steps=spec.steps, lr=spec.step)
    else:
        return None
    return _synced(lambda: atk(x, y), dev)


# -- Foolbox 3 (bethgelab/foolbox), on the PyTorch model or on a JAX function ----------------


def _foolbox_attack(spec):
    import foolbox as fb

    if spec.kind == "pgd-linf":
        return fb.attacks.LinfPGD(abs_stepsize=spec.step, steps=spec.steps, random_start=False)
    if spec.kind == "pgd-l2":
        return fb.attacks.L2PGD(abs_stepsize=spec.step, steps=spec.steps, random_start=False)
    if spec.kind == "mi-fgsm":
        # Foolbox accumulates sign(g) (its ℓ∞ normalisation runs before the momentum), not the
        # paper's g/‖g‖₁: the same settings, a different update (flagged in the table).
        return fb.attacks.LinfMomentumIterativeFastGradientMethod(
            momentum=spec.decay, abs_stepsize=spec.step, steps=spec.steps, random_start=False
        )
    if spec.kind == "cw-l2":
        return fb.attacks.L2CarliniWagnerAttack(
            binary_search_steps=1, steps=spec.steps, stepsize=spec.step, confidence=0.0,
            initial_const=spec.const, abort_early=False,
        )
    return None


def _foolbox_call(attack, spec, fmodel, x, y):
    # C&W is a minimisation attack: epsilons=None returns its unbounded result.
    eps = None if spec.kind == "cw-l2" else spec.eps
    return lambda: attack(fmodel, x, y, epsilons=eps)[1]  # the clipped adversarials


def foolbox_pt_runner(spec, problem) -> Callable[[], Any] | None:
    import foolbox as fb

    attack = _foolbox_attack(spec)
    if attack is None:
        return None
    fmodel = fb.PyTorchModel(problem["torch_model"], bounds=(0, 1), device=problem["torch_dev"])
    call = _foolbox_call(attack, spec, fmodel, problem["x_t"], problem["y_t"])
    return _synced(call, problem["torch_dev"])


def foolbox_jax_runner(spec, problem) -> Callable[[], Any] | None:
    import foolbox as fb
    import jax

    attack = _foolbox_attack(spec)
    if attack is None:
        return None
    # The best a user can hand Foolbox: the Flax model's batch forward, jitted. Foolbox's
    # loops then run op by op through eagerpy (jax.value_and_grad of its Python loss).
    module, variables = problem["module"], problem["variables"]
    forward = jax.jit(lambda x: module.apply(variables, x))
    fmodel = fb.JAXModel(forward, bounds=(0, 1))
    call = _foolbox_call(attack, spec, fmodel, problem["images"], problem["labels"])
    return lambda: jax.block_until_ready(call())


# -- ART (Trusted-AI/adversarial-robustness-toolbox), PyTorchClassifier --------------------------


def art_runner(spec, problem) -> Callable[[], Any] | None:
    import torch
    from art.attacks.evasion import MomentumIterativeMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    if spec.kind == "cw-l2":
        return None  # ART's C&W-ℓ2 descends with a line search, not Adam: not the same attack
    batch = problem["x_np"].shape[0]
    clf = PyTorchClassifier(
        model=problem["torch_model"],
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(3, 32, 32),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="gpu" if problem["torch_dev"] == "cuda" else "cpu",
    )
    common = dict(eps=spec.eps, eps_step=spec.step, max_iter=spec.steps, batch_size=batch,
                  verbose=False)
    if spec.kind == "pgd-linf":
        atk = ProjectedGradientDescent(clf, norm=np.inf, num_random_init=0, **common)
    elif spec.kind == "pgd-l2":
        atk = ProjectedGradientDescent(clf, norm=2, num_random_init=0, **common)
    elif spec.kind == "mi-fgsm":
        atk = MomentumIterativeMethod(clf, norm=np.inf, decay=spec.decay, **common)
    else:
        return None
    x, y = problem["x_np"], problem["y_np"]
    return lambda: atk.generate(x=x, y=y)


RUNNERS = {
    "torchattacks": torchattacks_runner,
    "foolbox-pt": foolbox_pt_runner,
    "foolbox-jax": foolbox_jax_runner,
    "art": art_runner,
}


def torch_state_dict_from_flax(variables, module, input_shape, template) -> dict:
    """The inverse of jaxadv's ``from_torch_state_dict`` for ``template``'s layout: a PyTorch state
    dict holding ``variables`` (Flax), so that a PyTorch twin computes the same function.

    The converter only re-lays entries out (transposes, the flatten's NCHW→NHWC permutation), so
    it is inverted by converting a state dict whose entries are their own flat indices and reading
    back where each Flax entry came from.
    """
    import jax
    import numpy as np

    from jaxadv.models import from_torch_state_dict

    offsets, tagged, start = {}, {}, 0
    for name, tensor in template.items():
        size = tensor.numel()
        offsets[name] = (start, tuple(tensor.shape))
        tagged[name] = np.arange(start, start + size, dtype=np.float64).reshape(tensor.shape)
        start += size
    assert start < 2**24, "indices must stay exact in float32"
    where = from_torch_state_dict(tagged, module, input_shape)
    flat = np.zeros(start, np.float32)
    for index, value in zip(jax.tree.leaves(where), jax.tree.leaves(variables)):
        flat[np.asarray(index, np.float64).astype(np.int64).ravel()] = np.asarray(value).ravel()
    import torch

    return {
        name: torch.from_numpy(flat[first : first + int(np.prod(shape))].reshape(shape).copy())
        for name, (first, shape) in offsets.items()
    }
