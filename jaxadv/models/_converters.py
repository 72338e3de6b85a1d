"""Converting PyTorch-style state dicts (name → array) to Flax variables.

Pretrained weights cannot be downloaded here, so victims trained elsewhere arrive as name-mapped
arrays (a ``torch.save``'d state dict exported with ``np.savez``, say). The layouts differ:

* convolution weights are ``OIHW`` in PyTorch and ``HWIO`` in Flax;
* linear weights are ``(out, in)`` in PyTorch and ``(in, out)`` in Flax;
* the first linear layer after a flatten reads its input in the order the feature map was
  flattened: ``(C, H, W)`` in PyTorch's NCHW, ``(H, W, C)`` in Flax's NHWC. Its rows must be
  permuted, not just transposed — a plain transpose loads without error and gives wrong logits
  whenever the feature map is larger than 1×1;
* batch norm's ``weight``/``bias``/``running_mean``/``running_var`` are Flax's ``params``
  ``scale``/``bias`` and ``batch_stats`` ``mean``/``var``.

Modules written in PyTorch's layout (RobustBench's and torchvision's architectures) declare
``TORCH_NAMES = "underscore-is-dot"``: their Flax layer paths are PyTorch's module paths with
``.`` written ``_``, so they need no name map; ``TORCH_IGNORED`` lists key prefixes their state
dicts carry but their forward pass never reads. A :class:`Normalized` wrapper's ``mean``/``std``
are checked against the state dict's (``normalize.mean``/``normalize.std`` or ``mu``/``sigma``).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxadv.models._checkpoint import abstract_variables, describe_module
from jaxadv.models._normalized import Normalized
from jaxadv.models._torch_file import read_torch_file

_IGNORED_SUFFIXES = ("num_batches_tracked",)  # PyTorch BatchNorm bookkeeping, not a weight
_TORCH_SUFFIXES = (".pt", ".pth", ".tar", ".bin")  # torch.save files; anything else is an .npz
_MAX_LISTED = 8  # entries named per kind of problem in an error message
# Where RobustBench keeps a model's normalisation: ``normalize_model``'s buffers, or ``mu``/``sigma``.
_NORMALIZATION_KEYS = (("normalize.mean", "normalize.std"), ("mu", "sigma"))


def _layers(tree: Mapping, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], dict]:
    """Maps each layer's path to its dict of array leaves (``{"kernel": ..., "bias": ...}``)."""
    out: dict[tuple[str, ...], dict] = {}
    leaves = {k: v for k, v in tree.items() if not isinstance(v, Mapping)}
    if leaves:
        out[prefix] = leaves
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(_layers(v, prefix + (k,)))
    return out


def _flatten_shape(module: nn.Module, abstract: Any, input_shape: tuple[int, ...]):
    """``(h, w, c)`` of the feature map the module flattens (sown as ``intermediates/features``)."""
    x = jax.ShapeDtypeStruct((1,) + tuple(input_shape), jnp.float32)
    _, state = jax.eval_shape(
        lambda v, x: module.apply(v, x, train=False, mutable=["intermediates"]), abstract, x
    )
    sown = state.get("intermediates", {}).get("features")
    if not sown or len(sown[0].shape) != 4:
        raise ValueError(
            f"`module` {describe_module(module)} names a `flatten_dense` layer but does not sow "
            "its [b, h, w, c] feature map as intermediates/features before the flatten."
        )
    return tuple(sown[0].shape[1:])


def _load(state_dict: Any) -> dict[str, np.ndarray]:
    if isinstance(state_dict, (str, os.PathLike)):
        if not os.path.isfile(state_dict):
            raise ValueError(f"`state_dict` path {os.fspath(state_dict)!r} is not a file.")
        path = os.fspath(state_dict)
        if path.endswith(_TORCH_SUFFIXES):
            loaded = read_torch_file(path)
            if not isinstance(loaded, Mapping):
                raise ValueError(
                    f"`state_dict` path {path!r} holds a {type(loaded).__name__}, not a state "
                    "dict (a mapping from names to tensors); save model.state_dict()."
                )
            return _load(loaded)
        return _load_npz(path)
    if not isinstance(state_dict, Mapping):
        raise ValueError(  # noqa: TRY004 (misuse raises ValueError throughout the library)
            "`state_dict` must be a mapping from names to arrays or the path of an .npz or .pt "
            f"file; got {type(state_dict).__name__}."
        )
    if isinstance(state_dict.get("state_dict"), Mapping):
        state_dict = state_dict["state_dict"]  # a training checkpoint {"state_dict": ..., ...}
    arrays = {}
    for name, value in state_dict.items():
        if hasattr(value, "detach"):  # a torch.Tensor, without importing torch
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise ValueError(
                f"`state_dict[{str(name)!r}]` must be a numeric array; got dtype {arr.dtype}."
            )
        arrays[str(name)] = arr
    if arrays and all(k.startswith("module.") for k in arrays):  # saved from nn.DataParallel
        arrays = {k[len("module.") :]: v for k, v in arrays.items()}
    return arrays


def _listing(items: list[str], sep: str = ", ") -> str:
    more = len(items) - _MAX_LISTED
    return sep.join(items[:_MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


def _by_layer(entries: list[tuple[str, str]]) -> list[str]:
    """``key (for flax_name)`` per entry, with the entries of one layer on one line:
    ``layer.{weight, bias} (for flax/layer)``, so a misfit names layers, not dozens of leaves."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for key, flax_name in entries:
        groups.setdefault(key.rpartition(".")[0], []).append((key, flax_name))
    out = []
    for prefix, group in groups.items():
        flax_layer = group[0][1].partition("/")[0]
        if len(group) == 1 or not prefix:
            out.extend(k + (f" (for {f})" if f else "") for k, f in group)
        else:
            leaves = ", ".join(k.rpartition(".")[2] for k, _ in group)
            out.append(f"{prefix}.{{{leaves}}}" + (f" (for {flax_layer})" if flax_layer else ""))
    return out


def torch_layer_name(module: nn.Module, flax_path: str) -> str:
    """The PyTorch module path of the Flax layer ``flax_path`` (dot-joined) of ``module``."""
    if getattr(module, "TORCH_NAMES", None) == "underscore-is-dot":
        return flax_path.replace("_", ".")
    return flax_path


def _take_normalization(arrays: dict[str, np.ndarray], module: Normalized) -> None:
    """Removes the normalisation entries from ``arrays``, checking them against ``module``."""
    for keys in _NORMALIZATION_KEYS:
        present = [k for k in keys if k in arrays]
        if not present:
            continue
        if len(present) == 1:
            raise ValueError(f"`state_dict` has {present[0]} without {set(keys) - {present[0]}}.")
        for key, expected in zip(keys, (module.mean, module.std)):
            value = arrays.pop(key).astype(np.float64).ravel()
            if value.shape != (len(expected),) or not np.allclose(value, expected, atol=1e-6):
                raise ValueError(
                    f"`state_dict[{key!r}]` is {value.tolist()} but the Normalized module's "
                    f"{key.rpartition('.')[2]} is {list(expected)}; build the module with the "
                    "state dict's normalisation (one value per channel)."
                )


def _load_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file; anything else (another format, a damaged zip, object
    arrays, which would need pickle) is a ``ValueError`` naming the file."""
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"`state_dict` path {path!r} is not an .npz file (not a zip archive); save the state "
            "dict with numpy.savez({name: array.numpy(), ...})."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except ValueError as err:  # object arrays: loading them would run pickle
        raise ValueError(
            f"`state_dict` path {path!r} holds an array that needs pickle to load (an object "
            f"array: {err}); save plain numeric arrays, e.g. tensor.numpy()."
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise ValueError(
            f"`state_dict` path {path!r} is a damaged .npz file ({type(err).__name__}: {err})."
        ) from None


def from_torch_state_dict(
    state_dict: Mapping[str, Any] | str | os.PathLike,
    module: nn.Module,
    input_shape: tuple[int, ...],
    name_map: Mapping[str, str] | None = None,
    *,
    strict: bool = True,
) -> dict[str, Any]:
    """Flax variables for ``module`` from a PyTorch-layout state dict.

    Every layer of the Flax module (``Conv``/``Stride2Conv``, ``Dense``, ``BatchNorm``) is looked
    up under a PyTorch module prefix: by default its Flax path joined with dots (``"conv1"``,
    ``"layer1_0.bn1"``), or ``name_map[flax_path]`` (e.g. ``{"conv1": "features.0"}``). Weights are
    read from ``prefix + ".weight"``, ``".bias"``, and for batch norm ``".running_mean"``,
    ``".running_var"``, and re-laid out (module docstring). Works for :class:`CWNet`,
    :class:`C4Net`, :class:`ResNet` and any module built from these layers whose only flatten
    feeds the Dense layer named by its ``flatten_dense`` attribute, with the pre-flatten map sown
    as ``intermediates/features``.

    Modules in PyTorch's layout (:class:`WideResNet`, :class:`PreActResNet18`,
    :class:`TorchvisionResNet`, :class:`VGG`) find their entries with no ``name_map``, and a
    :class:`Normalized` wrapper converts its model's entries (at the top level or under
    ``model.``) after checking the state dict's normalisation, if any, against its own.
    A ``module.`` prefix on every key (``nn.DataParallel``) is dropped.

    Args:
      state_dict: mapping from PyTorch parameter names to arrays (numpy, or CPU torch tensors), or
        the path of an ``.npz`` file holding them, or of a ``torch.save`` file (``.pt``, ``.pth``,
        ``.tar``, ``.bin``; read without torch; a ``{"state_dict": ...}`` checkpoint is unwrapped).
      module: the Flax module to build variables for.
      input_shape: shape of ONE example (it fixes the layer after the flatten), e.g.
        ``(28, 28, 1)``.
      name_map: Flax layer path (dot-joined) → PyTorch module prefix, for the layers whose names
        differ.
      strict: raise if ``state_dict`` has entries no layer reads (``num_batches_tracked`` is
        always ignored).

    Returns:
      ``{"params": ...}`` (plus ``"batch_stats"`` for batch norm) with float32 ``jax.Array``
      leaves, ready for :func:`from_flax`.

    Raises:
      ValueError: on a missing entry, a shape that does not match the module, an unknown
        ``name_map`` key, or (``strict``) unused entries; the message names them.
    """
    arrays = _load(state_dict)
    if isinstance(module, Normalized):
        arrays = dict(arrays)
        _take_normalization(arrays, module)
        if arrays and all(k.startswith("model.") for k in arrays):  # normalize_model's layout
            arrays = {k[len("model.") :]: v for k, v in arrays.items()}
        inner = from_torch_state_dict(arrays, module.model, input_shape, name_map, strict=strict)
        return {collection: {"model": tree} for collection, tree in inner.items()}
    ignored = tuple(getattr(module, "TORCH_IGNORED", ()))
    arrays = {k: v for k, v in arrays.items() if not k.startswith(ignored)} if ignored else arrays
    abstract = abstract_variables(module, input_shape)
    layers = _layers(abstract["params"])
    stats = _layers(abstract.get("batch_stats", {}))
    dotted = {".".join(path): path for path in layers}
    name_map = dict(name_map or {})
    unknown = sorted(set(name_map) - set(dotted))
    if unknown:
        raise ValueError(
            f"`name_map` names layers that {describe_module(module)} does not have: "
            f"{', '.join(unknown)}; its layers are {', '.join(sorted(dotted))}."
        )
    flatten_dense = getattr(module, "flatten_dense", None)
    flatten_hwc = _flatten_shape(module, abstract, input_shape) if flatten_dense else None

    used: set[str] = set()
    missing: list[tuple[str, str]] = []
    mismatched: list[str] = []

    def take(key: str, expected: tuple[int, ...], flax_name: str) -> np.ndarray | None:
        if key not in arrays:
            missing.append((key, flax_name))
            return None
        used.add(key)
        value = arrays[key]
        if value.shape != expected:
            mismatched.append(f"{key} has shape {value.shape}, expected {expected} for {flax_name}")
            return None
        return value

    params: dict[str, Any] = {}
    batch_stats: dict[str, Any] = {}
    for name, path in sorted(dotted.items()):
        prefix = name_map.get(name, torch_layer_name(module, name))
        leaves = layers[path]
        new: dict[str, Any] = {}
        if path in stats:  # batch norm
            sources = {"scale": "weight", "bias": "bias"}
            for leaf, torch_leaf in sources.items():
                if leaf in leaves:
                    new[leaf] = take(f"{prefix}.{torch_leaf}", leaves[leaf].shape, f"{name}/{leaf}")
            new_stats = {
                leaf: take(f"{prefix}.running_{leaf}", shape.shape, f"{name}/{leaf}")
                for leaf, shape in stats[path].items()
            }
            _insert(batch_stats, path, new_stats)
        elif "kernel" not in leaves:
            raise ValueError(
                f"`module` {describe_module(module)} has a layer {name!r} with parameters "
                f"{sorted(leaves)}; only convolutions, dense layers and batch norm convert."
            )
        else:
            kernel = leaves["kernel"].shape
            if len(kernel) == 4:  # HWIO <- OIHW
                w = take(f"{prefix}.weight", (kernel[3], kernel[2], kernel[0], kernel[1]), name)
                new["kernel"] = None if w is None else w.transpose(2, 3, 1, 0)
            elif len(kernel) == 2:  # (in, out) <- (out, in)
                w = take(f"{prefix}.weight", (kernel[1], kernel[0]), name)
                if w is not None and name == flatten_dense:
                    # PyTorch flattened (C, H, W); Flax flattens (H, W, C).
                    h, wd, c = flatten_hwc
                    w = w.reshape(kernel[1], c, h, wd).transpose(0, 2, 3, 1).reshape(kernel[1], -1)
                new["kernel"] = None if w is None else w.T
            else:
                raise ValueError(
                    f"`module` {describe_module(module)} has a layer {name!r} with a "
                    f"{len(kernel)}-D kernel; only 2-D convolutions and dense layers convert."
                )
            if "bias" in leaves:
                new["bias"] = take(f"{prefix}.bias", leaves["bias"].shape, f"{name}/bias")
        _insert(params, path, new)

    unused = sorted(k for k in set(arrays) - used if not k.endswith(_IGNORED_SUFFIXES))
    problems = []
    if missing:
        problems.append("missing entries: " + _listing(_by_layer(missing)))
    if mismatched:
        problems.append("shape mismatches: " + _listing(mismatched, "; "))
    if strict and unused:
        problems.append("entries no layer reads: " + _listing(_by_layer([(k, "") for k in unused])))
    if problems:
        raise ValueError(
            f"`state_dict` does not fit {describe_module(module)} on inputs of shape "
            f"{tuple(input_shape)}: " + "; ".join(problems) + ". Map differing layer names with "
            "`name_map` (Flax layer path -> PyTorch prefix)."
        )
    variables = {"params": params}
    if batch_stats:
        variables["batch_stats"] = batch_stats
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), variables)


def _insert(tree: dict, path: tuple[str, ...], leaves: dict) -> None:
    for key in path:
        tree = tree.setdefault(key, {})
    tree.update(leaves)
