"""RobustBench's model zoo read from the user's own ``.pt`` files (nothing is downloaded).

Croce, Andriushchenko, Sehwag, Debenedetti, Flammarion, Chiang, Mittal & Hein, "RobustBench: a
standardized adversarial robustness benchmark", NeurIPS 2021 Datasets and Benchmarks. Its
``load_model(model_name, model_dir, dataset, threat_model)`` keeps each checkpoint at
``<model_dir>/<dataset>/<threat_model>/<model_name>.pt``; :func:`load_robustbench` reads the same
file, unwraps it as RobustBench does (``checkpoint["last"]`` for two entries,
``checkpoint["state_dict"]`` when present, ``module.``/``model.`` key prefixes dropped), and
builds the Flax twin of the model: its architecture (:class:`WideResNet`, :class:`PreActResNet`,
:class:`TorchvisionResNet`) behind its input normalisation (:class:`Normalized`).

The table covers the zoo's entries built from those architectures (RobustBench 1.1's model
info); entries of other architectures (DeepMind's WideResNets with Swish, ResNeXt, ResNest,
ensembles) are not listed.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import numpy as np

from jaxadv import _checks
from jaxadv.models._converters import from_torch_state_dict
from jaxadv.models._normalized import IMAGENET_MEAN, IMAGENET_STD, Normalized
from jaxadv.models._robustbench_nets import PreActResNet, WideResNet
from jaxadv.models._torch_file import read_torch_file
from jaxadv.models._torchvision_nets import ResNet18, ResNet50
from jaxadv.models._victim import Victim, from_flax

DATASETS = {"cifar10": (10, (32, 32, 3)), "cifar100": (100, (32, 32, 3))}
DATASETS["imagenet"] = (1000, (224, 224, 3))
THREAT_MODELS = ("Linf", "L2", "corruptions")

_C10 = ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
_C10_ENGSTROM = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
_C10_AUGUSTIN = (
    (0.4913997551666284, 0.48215855929893703, 0.4465309133731618),
    (0.24703225141799082, 0.24348516474564, 0.26158783926049628),
)
_C10_RONY = ((0.491, 0.482, 0.447), (0.247, 0.243, 0.262))
_C100 = ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
_C100_WU = (
    (0.5070751592371323, 0.48654887331495095, 0.4409178433670343),
    (0.2673342858792401, 0.2564384629170883, 0.27615047132568404),
)
_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # also Hendrycks et al.'s ``2x - 1``
_IMAGENET = (IMAGENET_MEAN, IMAGENET_STD)


class _Entry(NamedTuple):
    build: Callable[[int], nn.Module]  # num_classes -> the architecture
    normalization: tuple | None  # (mean, std), or None: the network reads pixels
    subkey: str | None = None  # the checkpoint holds the weights under this key


def _wrn(depth: int, k: int, normalization=None) -> _Entry:
    return _Entry(lambda c: WideResNet(depth, k, c), normalization)


def _preact(v2: bool, bn: bool, normalization=None, subkey=None) -> _Entry:
    return _Entry(lambda c: PreActResNet((2, 2, 2, 2), c, 64, bn, v2), normalization, subkey)


_R18_CIFAR = _Entry(lambda c: ResNet18(c, cifar_stem=True), None)
_R50 = _Entry(lambda c: ResNet50(c), _IMAGENET)
_KIREEV = _preact(True, True, _C10, "last")


def _names(entry: _Entry, *names: str) -> dict[str, _Entry]:
    return dict.fromkeys(names, entry)


_MODELS: dict[tuple[str, str], dict[str, _Entry]] = {
    ("cifar10", "Linf"): {
        "Andriushchenko2020Understanding": _preact(False, False, None, "last"),
        **_names(
            _wrn(28, 10),
            "Carmon2019Unlabeled", "Sehwag2020Hydra", "Wang2020Improving", "Standard",
            "Wu2020Adversarial_extra", "Zhang2020Geometry", "Sridhar2021Robust",
        ),
        **_names(
            _wrn(34, 10),
            "Zhang2019Theoretically", "Huang2020Self", "Zhang2019You", "Zhang2020Attacks",
            "Wu2020Adversarial", "Sehwag2021Proxy", "Sitawarin2020Improving",
            "Cui2020Learnable_34_10", "Addepalli2021Towards_WRN34", "Chen2021LTD_WRN34_10",
            "Jia2022LAS-AT_34_10", "Addepalli2022Efficient_WRN_34_10",
        ),
        **_names(_wrn(34, 20), "Cui2020Learnable_34_20", "Chen2021LTD_WRN34_20"),
        "Sridhar2021Robust_34_15": _wrn(34, 15),
        "Jia2022LAS-AT_70_16": _wrn(70, 16),
        "Hendrycks2019Using": _wrn(28, 10, _HALF),
        "Rice2020Overfitting": _wrn(34, 20, _C10),
        "Chen2020Efficient": _wrn(34, 10, _C10),
        "Wong2020Fast": _preact(False, False, _C10),
        "Engstrom2019Robustness": _Entry(lambda c: ResNet50(c, cifar_stem=True), _C10_ENGSTROM),
        **_names(
            _R18_CIFAR,
            "Sehwag2021Proxy_R18", "Addepalli2021Towards_RN18", "Addepalli2022Efficient_RN18",
        ),
    },
    ("cifar10", "L2"): {
        **_names(_wrn(28, 10), "Standard"),
        **_names(_wrn(34, 10), "Wu2020Adversarial", "Sehwag2021Proxy"),
        "Rony2019Decoupling": _wrn(28, 10, _C10_RONY),
        **_names(
            _wrn(34, 10, _C10_AUGUSTIN),
            "Augustin2020Adversarial_34_10", "Augustin2020Adversarial_34_10_extra",
        ),
        "Augustin2020Adversarial": _Entry(lambda c: ResNet50(c, cifar_stem=True), _C10_AUGUSTIN),
        "Engstrom2019Robustness": _Entry(lambda c: ResNet50(c, cifar_stem=True), _C10_ENGSTROM),
        "Rice2020Overfitting": _preact(True, True, _C10),
        "Sehwag2021Proxy_R18": _R18_CIFAR,
    },
    ("cifar10", "corruptions"): {
        "Standard": _wrn(28, 10),
        **_names(_wrn(34, 10), "Addepalli2021Towards_WRN34", "Addepalli2022Efficient_WRN_34_10"),
        "Hendrycks2020AugMix_WRN": _wrn(40, 2, _HALF),
        **_names(
            _KIREEV,
            "Kireev2021Effectiveness_Gauss50percent", "Kireev2021Effectiveness_AugMixNoJSD",
            "Kireev2021Effectiveness_RLAT", "Kireev2021Effectiveness_RLATAugMixNoJSD",
            "Kireev2021Effectiveness_RLATAugMix",
        ),
        "Modas2021PRIMEResNet18": _Entry(lambda c: ResNet18(c, cifar_stem=True), _HALF),
    },
    ("cifar100", "Linf"): {
        **_names(
            _wrn(34, 10),
            "Cui2020Learnable_34_10_LBGAT0", "Cui2020Learnable_34_10_LBGAT6", "Sehwag2021Proxy",
            "Sitawarin2020Improving", "Addepalli2021Towards_WRN34", "Chen2021LTD_WRN34_10",
            "Jia2022LAS-AT_34_10", "Addepalli2022Efficient_WRN_34_10",
        ),
        **_names(_wrn(34, 20), "Cui2020Learnable_34_20_LBGAT6", "Jia2022LAS-AT_34_20"),
        "Chen2020Efficient": _wrn(34, 10, _C100),
        "Wu2020Adversarial": _wrn(34, 10, _C100_WU),
        "Hendrycks2019Using": _wrn(28, 10, _HALF),
        "Rice2020Overfitting": _preact(True, True, _C100_WU),
        "Addepalli2021Towards_PARN18": _preact(True, True),
        "Addepalli2022Efficient_RN18": _R18_CIFAR,
    },
    ("cifar100", "corruptions"): {
        **_names(_wrn(34, 10), "Addepalli2021Towards_WRN34", "Addepalli2022Efficient_WRN_34_10"),
        "Hendrycks2020AugMix_WRN": _wrn(40, 2, _HALF),
        "Addepalli2021Towards_PARN18": _preact(True, True),
        "Modas2021PRIMEResNet18": _Entry(lambda c: ResNet18(c, cifar_stem=True), _HALF),
    },
    ("imagenet", "Linf"): {
        **_names(
            _R50, "Wong2020Fast", "Engstrom2019Robustness", "Salman2020Do_R50", "Standard_R50"
        ),
        "Salman2020Do_R18": _Entry(lambda c: ResNet18(c), _IMAGENET),
        "Salman2020Do_50_2": _Entry(lambda c: ResNet50(c, width_per_group=128), _IMAGENET),
    },
    ("imagenet", "corruptions"): {
        **_names(
            _R50, "Geirhos2018_SIN", "Geirhos2018_SIN_IN", "Geirhos2018_SIN_IN_IN",
            "Hendrycks2020Many", "Hendrycks2020AugMix", "Standard_R50",
        ),
        "Salman2020Do_50_2_Linf": _Entry(lambda c: ResNet50(c, width_per_group=128), _IMAGENET),
    },
}  # fmt: skip

# The entries :func:`load_robustbench` reads: ``{(dataset, threat_model): (model_name, ...)}``.
ROBUSTBENCH_MODELS = {key: tuple(sorted(names)) for key, names in _MODELS.items()}


def _canonical(name: str, value: Any, choices) -> str:
    by_lower = {c.lower(): c for c in choices}
    if not isinstance(value, str) or value.lower() not in by_lower:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, choices))}; got {value!r}.")
    return by_lower[value.lower()]


def _entry(model_name: str, dataset: str, threat_model: str) -> _Entry:
    names = _MODELS.get((dataset, threat_model), {})
    if model_name in names:
        return names[model_name]
    close = difflib.get_close_matches(str(model_name), list(names), n=5, cutoff=0.5)
    elsewhere = sorted(f"{d}/{t}" for (d, t), ns in _MODELS.items() if model_name in ns)
    hint = f" Close names: {', '.join(close)}." if close else ""
    if elsewhere:
        hint += f" {model_name!r} is listed under {', '.join(elsewhere)}."
    raise ValueError(
        f"`model_name` {model_name!r} is not among the {len(names)} RobustBench models jaxadv "
        f"reads for dataset {dataset!r} and threat model {threat_model!r} (those built from "
        "WideResNet, PreActResNet-18 and ResNet-18/50; see models.ROBUSTBENCH_MODELS)." + hint
    )


def _strip(arrays: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in arrays.items()}


def _file_normalization(state_dict: dict[str, Any]) -> tuple | None:
    for mean_key, std_key in (("mu", "sigma"), ("normalize.mean", "normalize.std")):
        if mean_key in state_dict and std_key in state_dict:
            mean, std = (np.asarray(state_dict[k], np.float64).ravel() for k in (mean_key, std_key))
            return tuple(mean.tolist()), tuple(std.tolist())
    return None


def load_robustbench(
    model_name: str,
    threat_model: str = "Linf",
    dataset: str = "cifar10",
    model_dir: str | os.PathLike = "./models",
) -> Victim:
    """The RobustBench model ``model_name`` as a :class:`Victim`, from the user's ``.pt`` file.

    Reads ``<model_dir>/<dataset>/<threat_model>/<model_name>.pt`` (RobustBench's own layout:
    files that ``robustbench.utils.load_model`` downloaded work as they are) without torch, and
    converts it with :func:`from_torch_state_dict`. The victim takes pixels in ``[0, 1]``
    (32×32×3 for CIFAR, 224×224×3 for ImageNet) and applies the model's normalisation itself:
    the file's ``mu``/``sigma`` (or ``normalize.mean``/``normalize.std``) when it has them,
    else RobustBench's constants for that model.

    Args:
      model_name: RobustBench's name, e.g. ``"Carmon2019Unlabeled"``; the names read are
        ``models.ROBUSTBENCH_MODELS[(dataset, threat_model)]``.
      threat_model: ``"Linf"``, ``"L2"`` or ``"corruptions"`` (any case).
      dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"`` (any case).
      model_dir: RobustBench's ``model_dir``.

    Returns:
      A :class:`Victim` (bounds ``(0, 1)``) whose module is the architecture, wrapped in
      :class:`Normalized` when the model normalises its inputs.

    Raises:
      ValueError: an unknown dataset, threat model or model name (with close names), a missing
        or unreadable file, or a state dict that does not fit the architecture (naming the
        entries that are missing, extra or of another shape).

    References:
      Croce et al., "RobustBench: a standardized adversarial robustness benchmark", NeurIPS 2021.
    """
    dataset = _canonical("dataset", dataset, tuple(DATASETS))
    threat_model = _canonical("threat_model", threat_model, THREAT_MODELS)
    entry = _entry(model_name, dataset, threat_model)
    _checks.check_directory("model_dir", model_dir)
    path = Path(model_dir) / dataset / threat_model / f"{model_name}.pt"
    if not path.is_file():
        raise ValueError(
            f"`model_dir` {os.fspath(model_dir)!r} has no file {os.fspath(path)!r}; jaxadv does "
            "not download: fetch it with robustbench.utils.load_model (or its Google Drive id) "
            "into this directory layout."
        )
    checkpoint = read_torch_file(os.fspath(path))
    if entry.subkey and isinstance(checkpoint, dict) and entry.subkey in checkpoint:
        checkpoint = checkpoint[entry.subkey]
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict):
        raise ValueError(
            f"{os.fspath(path)!r} holds a {type(checkpoint).__name__}, not a state dict."
        )
    state_dict = _strip(_strip(checkpoint, "module."), "model.")
    num_classes, input_shape = DATASETS[dataset]
    module = entry.build(num_classes)
    normalization = _file_normalization(state_dict) or entry.normalization
    if normalization is not None:
        module = Normalized(module, *normalization)
    try:
        variables = from_torch_state_dict(state_dict, module, input_shape)
    except ValueError as err:
        raise ValueError(f"RobustBench's {model_name} from {os.fspath(path)!r}: {err}") from None
    return from_flax(module, variables, input_shape=input_shape, num_classes=num_classes)
