"""The transfer matrix: every source model × every target model, per attack, in ONE compiled call.

Adversarial examples are crafted white-box on a source and shown to a target the attack never
saw. For each attack ``a``, source ``s`` and target ``t`` the transfer success rate is

    rate[a, s, t] = #{i : target t classifies image i correctly  and  t misclassifies x_adv[a, s, i]}
                    / #{i : target t classifies image i correctly}

(Papernot et al. 2017's transfer rate, restricted to examples the target got right, as Dong et al.
2018, Xie et al. 2019 and Wang & He 2021 report it; NaN when the target gets none right). The
diagonal (``s == t``) is the white-box success rate.

One ``jit`` holds every (attack, source) program and every target's forward passes: the
structure (attacks, victim architectures) is static, the weights, images, labels, keys and
hyper-parameters are arguments, so new weights of the same architectures reuse the compilation.
Sources are unrolled, not stacked under ``vmap``: a ``vmap`` over convolution weights becomes a
grouped convolution, measured 2.1× slower than two separate ones on XLA CPU (C&W net, 32 digits).
Example ``i`` of every (attack, source) cell uses ``jax.random.split(key, b)[i]``, the key
``attack.batch(..., key)`` would give it, so a cell equals
:func:`jaxadv.metrics.transfer_success` run alone with the same key.

Saliency victims have no classes to flip: :func:`saliency_transfer_matrix` measures instead how
far each target's benchmark scores against the ground truth (CC, sAUC, ...) drop on the images an
untargeted saliency attack crafted on each source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxadv import _checks, _compile
from jaxadv.attacks import AttackBase
from jaxadv.attacks import SaliencyAttack as _SaliencyAttack
from jaxadv.data.saliency import SaliencyDataset as _SaliencyDataset
from jaxadv.training import SALIENCY_METRIC_NAMES as _METRICS
from jaxadv.training import evaluate_saliency_maps as _evaluate_maps
from jaxadv.training import predict_saliency as _predict_saliency


class TransferMatrix(NamedTuple):
    """What :func:`transfer_matrix` measured.

    Attributes:
      attacks, sources, targets: the names, in the order of the axes below.
      rate: ``f32[A, S, T]`` transfer success rate (module docstring); NaN for a target that
        classifies no clean image correctly.
      fooled: ``bool[A, S, T, B]``, whether target ``t`` misclassifies ``x_adv[a, s, i]``.
      clean_correct: ``bool[T, B]``, whether target ``t`` classifies clean image ``i`` correctly.
      source_success: ``bool[A, S, B]``, the attack's own (white-box) success on its source.
    """

    attacks: tuple[str, ...]
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    rate: np.ndarray
    fooled: np.ndarray
    clean_correct: np.ndarray
    source_success: np.ndarray

    def table(self, attack: str, digits: int = 2) -> str:
        """The markdown table of one attack: rows sources, columns targets, cells rates."""
        _checks.check_choice("attack", attack, self.attacks)
        rate = self.rate[self.attacks.index(attack)]
        lines = [
            "| source \\ target | " + " | ".join(self.targets) + " |",
            "|---" * (len(self.targets) + 1) + "|",
        ]
        for s, name in enumerate(self.sources):
            cells = " | ".join(f"{r:.{digits}f}" for r in rate[s])
            lines.append(f"| {name} | {cells} |")
        return "\n".join(lines)

    def mean_transfer(self) -> np.ndarray:
        """``f32[A]``: each attack's mean rate over the off-diagonal (source ≠ target by name)
        cells, i.e. its black-box transfer success averaged over the pairs."""
        off = np.array([[s != t for t in self.targets] for s in self.sources])
        return np.array([np.nanmean(r[off]) for r in self.rate], np.float32)


def _named(argument: str, mapping: Any, kind: str) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    if not isinstance(mapping, Mapping) or not mapping:
        raise ValueError(
            f"`{argument}` must be a non-empty mapping of names to {kind}; got "
            f"{type(mapping).__name__}{' (empty)' if isinstance(mapping, Mapping) else ''}."
        )
    for name in mapping:
        if not isinstance(name, str):
            raise ValueError(f"`{argument}` must be keyed by strings; got the key {name!r}.")
    return tuple(mapping), tuple(mapping.values())


def _check_victims(argument: str, names, victims, reference) -> None:
    for name, victim in zip(names, victims):
        if not (callable(victim) and hasattr(victim, "num_classes") and hasattr(victim, "batch")):
            raise ValueError(
                f"`{argument}[{name!r}]` must be a classifier victim (with `num_classes` and "
                f"`batch`); got {type(victim).__name__}."
            )
        mine = (tuple(victim.input_shape), victim.num_classes, tuple(victim.bounds))
        if mine != reference:
            raise ValueError(
                f"`{argument}[{name!r}]` must take the inputs and classes of the first source "
                f"(input shape, classes, bounds) {reference}; got {mine}."
            )


def _check_attacks(names, attacks, hparams, sources) -> tuple[Any, ...]:
    hparams = {} if hparams is None else dict(hparams)
    unknown = sorted(set(hparams) - set(names))
    if unknown:
        raise ValueError(f"`hparams` names unknown attack(s) {unknown}; attacks are {list(names)}.")
    hps = []
    for name, attack in zip(names, attacks):
        if not isinstance(attack, AttackBase):
            raise ValueError(
                f"`attacks[{name!r}]` must be a jaxadv attack (e.g. `jaxadv.attacks.bim()`); got "
                f"{type(attack).__name__}."
            )
        if attack.targeted:
            raise ValueError(
                f"`attacks[{name!r}]` is targeted; the transfer matrix measures untargeted "
                "transfer (a target model fooled into any wrong class)."
            )
        hp = hparams.get(name, attack.hparams())
        attack.check_params(hp)
        for victim in sources:
            attack.check_victim(victim, hp)
        if any(np.ndim(leaf) for leaf in hp):
            raise ValueError(
                f"`hparams[{name!r}]` must be one setting (scalar leaves); got leaves of shapes "
                f"{[np.shape(leaf) for leaf in hp]}."
            )
        hps.append(jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float32), hp))
    return tuple(hps)


def transfer_matrix(
    attacks: Mapping[str, AttackBase],
    sources: Mapping[str, Any],
    targets: Mapping[str, Any] | None,
    images: Any,
    labels: Any,
    key: jax.Array,
    *,
    hparams: Mapping[str, Any] | None = None,
) -> TransferMatrix:
    """Attacks every source with every attack and shows the examples to every target.

    Args:
      attacks: name → untargeted attack (any :class:`~jaxadv.attacks.AttackBase`).
      sources: name → classifier victim the attacks see white-box.
      targets: name → classifier victim the examples are shown to (only forward passes); None:
        the sources themselves (the usual square matrix, white-box on the diagonal).
      images: ``f32[b, *input_shape]`` clean images inside the victims' bounds.
      labels: ``int[b]`` their true classes.
      key: PRNG key; example ``i`` of every cell uses ``jax.random.split(key, b)[i]``.
      hparams: name → one hyper-parameter setting of that attack (default ``attack.hparams()``).

    Returns:
      :class:`TransferMatrix` (numpy arrays).
    """
    attack_names, attack_list = _named("attacks", attacks, "attacks")
    source_names, source_list = _named("sources", sources, "classifier victims")
    targets = sources if targets is None else targets
    target_names, target_list = _named("targets", targets, "classifier victims")
    first = source_list[0]
    if not hasattr(first, "num_classes"):
        raise ValueError(
            f"`sources[{source_names[0]!r}]` must be a classifier victim; got "
            f"{type(first).__name__}."
        )
    reference = (tuple(first.input_shape), first.num_classes, tuple(first.bounds))
    _check_victims("sources", source_names, source_list, reference)
    _check_victims("targets", target_names, target_list, reference)
    _checks.check_key("key", key)
    hps = _check_attacks(attack_names, attack_list, hparams, source_list)
    images, labels, _ = attack_list[0].check_inputs(first, images, labels, None)
    keys = jax.random.split(key, images.shape[0])
    fooled, clean_correct, success = _sweep(
        attack_list, source_list, target_list, hps, images, labels, keys
    )
    fooled, clean_correct = np.asarray(fooled), np.asarray(clean_correct)
    kept = clean_correct.sum(axis=-1)  # [T]
    hits = (fooled & clean_correct[None, None]).sum(axis=-1)  # [A, S, T]
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(kept > 0, hits / np.maximum(kept, 1), np.nan).astype(np.float32)
    return TransferMatrix(
        attacks=attack_names,
        sources=source_names,
        targets=target_names,
        rate=rate,
        fooled=fooled,
        clean_correct=clean_correct,
        source_success=np.asarray(success),
    )


@_compile.jit_static(0)
def _sweep(attacks, sources, targets, hps, images, labels, keys):
    """The whole matrix as one program: ``(fooled[A,S,T,B], clean_correct[T,B],
    source_success[A,S,B])``."""

    def predict(victim, x):
        return jnp.argmax(victim.batch(x), axis=-1)

    clean_correct = jnp.stack([predict(t, images) == labels for t in targets])
    fooled, success = [], []
    for attack, hp in zip(attacks, hps):
        run = jax.vmap(attack.run, in_axes=(None, None, 0, 0, 0, 0))
        per_source = [run(source, hp, images, labels, labels, keys) for source in sources]
        success.append(jnp.stack([r.success for r in per_source]))
        fooled.append(
            jnp.stack(
                [jnp.stack([predict(t, r.x_adv) != labels for t in targets]) for r in per_source]
            )
        )
    return jnp.stack(fooled), clean_correct, jnp.stack(success)


class SaliencyTransferMatrix(NamedTuple):
    """What :func:`saliency_transfer_matrix` measured: benchmark scores of the targets' maps
    against the ground truth, clean and on the adversarial images of every (attack, source).

    Attributes:
      attacks, sources, targets: the names, in the order of the axes below.
      clean: metric name (``SALIENCY_METRIC_NAMES``: cc, nss, sauc, kl, sim) → ``f32[T]``, the
        mean score of target ``t``'s maps of the clean images.
      adversarial: metric name → ``f32[A, S, T]``, the mean score of target ``t``'s maps of the
        images attack ``a`` crafted on source ``s``.
      source_success: ``bool[A, S, B]``, the attack's own success on its source (CC of the
        source's map to its clean map below the attack's ``threshold``).
    """

    attacks: tuple[str, ...]
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    clean: dict[str, np.ndarray]
    adversarial: dict[str, np.ndarray]
    source_success: np.ndarray

    def drop(self, metric: str = "cc") -> np.ndarray:
        """``f32[A, S, T]``: clean minus adversarial score (positive: the attack hurt the target;
        for KL, where lower is better, a negative drop is the harm)."""
        _checks.check_choice("metric", metric, tuple(self.clean))
        return self.clean[metric][None, None] - self.adversarial[metric]

    def table(self, attack: str, metric: str = "cc", digits: int = 3) -> str:
        """The markdown table of one attack's drops: rows sources, columns targets, with the
        clean score of each target in the header."""
        _checks.check_choice("attack", attack, self.attacks)
        drop = self.drop(metric)[self.attacks.index(attack)]
        heads = [f"{t} ({self.clean[metric][i]:.{digits}f})" for i, t in enumerate(self.targets)]
        lines = [
            f"| Δ{metric} source \\ target (clean) | " + " | ".join(heads) + " |",
            "|---" * (len(self.targets) + 1) + "|",
        ]
        for s, name in enumerate(self.sources):
            lines.append(f"| {name} | " + " | ".join(f"{d:+.{digits}f}" for d in drop[s]) + " |")
        return "\n".join(lines)


def _check_saliency_victims(argument: str, names, victims, input_shape) -> None:
    for name, victim in zip(names, victims):
        if not all(hasattr(victim, a) for a in ("output", "map_shape", "batch", "input_shape")):
            raise ValueError(
                f"`{argument}[{name!r}]` must be a saliency victim "
                f"(jaxadv.models.saliency.from_flax_saliency); got {type(victim).__name__}."
            )
        if tuple(victim.input_shape) != input_shape:
            raise ValueError(
                f"`{argument}[{name!r}]` must take the images of `data`, of shape {input_shape}; "
                f"got input shape {tuple(victim.input_shape)}."
            )


def saliency_transfer_matrix(
    attacks: Mapping[str, Any],
    sources: Mapping[str, Any],
    targets: Mapping[str, Any] | None,
    data: Any,
    key: jax.Array,
    *,
    hparams: Mapping[str, Any] | None = None,
    metric_key: jax.Array | None = None,
    n_other: int = 10,
    splits: int = 100,
) -> SaliencyTransferMatrix:
    """The saliency half of the transfer matrix: how far untargeted saliency attacks crafted on
    each source lower every target's benchmark scores against the ground truth.

    Each untargeted :class:`~jaxadv.attacks.SaliencyAttack` (e.g.
    :func:`~jaxadv.attacks.saliency_pgd`, or one wrapped by ``with_transfer``) pushes the
    source's map away from its clean map (Che et al., arXiv 1904.01231); the adversarial images
    are then shown to every target, and its maps are scored against ``data``'s ground truth with
    :func:`jaxadv.training.evaluate_saliency_maps` (CC, NSS, sAUC, KL, SIM; MIT conventions).
    The drop ``clean − adversarial`` per (attack, source, target) cell is the transfer of the
    attack; the diagonal is white-box. Clean and adversarial maps are scored with the same
    ``metric_key``, so sAUC's random negatives are the same draws for both (a paired drop).

    Unlike :func:`transfer_matrix` this is not one compiled call: each cell's images ARE
    ``attack.batch(source, hp, data.images, None, key)``, whose compilation is cached per
    attack and victim architecture (sources of one architecture share it, and so does a later
    ``attack.batch`` on them), the maps are :func:`jaxadv.training.predict_saliency`'s, and the
    scoring runs on the host (numpy draws), which dominates for a few models.

    Args:
      attacks: name → untargeted saliency attack.
      sources: name → saliency victim the attacks see white-box.
      targets: name → saliency victim the images are shown to; None: the sources.
      data: the images (stacked, ``float32[b, h, w, 3]``: a loader's ``size=`` or the
        generated scenes) with their ground truth; at least 2 items (sAUC).
      key: PRNG key of the attacks.
      hparams: name → one hyper-parameter setting of that attack (default ``attack.hparams()``).
      metric_key: PRNG key of sAUC's draws (default ``jax.random.key(1)``).
      n_other, splits: sAUC's other images and random splits (``evaluate_saliency_maps``).

    Returns:
      :class:`SaliencyTransferMatrix` (numpy arrays).
    """
    attack_names, attack_list = _named("attacks", attacks, "saliency attacks")
    source_names, source_list = _named("sources", sources, "saliency victims")
    targets = sources if targets is None else targets
    target_names, target_list = _named("targets", targets, "saliency victims")
    if not isinstance(data, _SaliencyDataset):
        raise ValueError(f"`data` must be a SaliencyDataset; got {type(data).__name__}.")
    if not isinstance(data.images, np.ndarray):
        raise ValueError(
            "`data` must hold stacked images (load it with `size=(h, w)`, or the generated "
            f"scenes); got a list of {len(data.images)} per-item images."
        )
    if len(data) < 2:
        raise ValueError(f"`data` must hold at least 2 images (sAUC); got {len(data)}.")
    input_shape = tuple(data.images.shape[1:])
    _check_saliency_victims("sources", source_names, source_list, input_shape)
    _check_saliency_victims("targets", target_names, target_list, input_shape)
    for name, attack in zip(attack_names, attack_list):
        if not isinstance(attack, _SaliencyAttack):
            raise ValueError(
                f"`attacks[{name!r}]` must be a saliency attack (e.g. "
                f"`jaxadv.attacks.saliency_pgd()`); got {type(attack).__name__}. Classifiers "
                "take `transfer_matrix`."
            )
    _checks.check_key("key", key)
    metric_key = jax.random.key(1) if metric_key is None else metric_key
    _checks.check_key("metric_key", metric_key)
    hps = _check_attacks(attack_names, attack_list, hparams, source_list)
    images = jnp.asarray(data.images, jnp.float32)
    clean_maps = [_predict_saliency(t, images) for t in target_list]
    adv_maps, success = [], []
    for attack, hp in zip(attack_list, hps):
        per_source, hits = [], []
        for source in source_list:
            result = attack.batch(source, hp, images, None, key)
            hits.append(np.asarray(result.success))
            per_source.append([_predict_saliency(t, result.x_adv) for t in target_list])
        adv_maps.append(per_source)
        success.append(np.stack(hits))

    def score(maps):
        scores = _evaluate_maps(
            np.asarray(maps), data, key=metric_key, n_other=n_other, splits=splits
        )
        return [scores[m] for m in _METRICS]

    clean = np.array([score(m) for m in clean_maps], np.float32)  # [T, M]
    adversarial = np.array(
        [[[score(m) for m in per_target] for per_target in per_source] for per_source in adv_maps],
        np.float32,
    ).reshape(len(attack_list), len(source_list), len(target_list), -1)  # [A, S, T, M]
    return SaliencyTransferMatrix(
        attacks=attack_names,
        sources=source_names,
        targets=target_names,
        clean={m: clean[:, i] for i, m in enumerate(_METRICS)},
        adversarial={m: adversarial[..., i] for i, m in enumerate(_METRICS)},
        source_success=np.stack(success),
    )


def plot_transfer_matrix(matrix: TransferMatrix, *, path: Any = None, digits: int = 2) -> Any:
    """Heat maps of the rates, one panel per attack (rows sources, columns targets).

    Draws on a fresh :class:`matplotlib.figure.Figure` (no pyplot state), saves it to ``path``
    when given, and returns it. matplotlib is imported here (an optional dependency).

    Args:
      matrix: the :class:`TransferMatrix` to draw.
      path: where to save the figure (None: not saved).
      digits: decimals of the rate printed in each cell (NaN cells show "–").

    Returns:
      The matplotlib ``Figure``.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "The transfer heat map needs matplotlib: `pip install matplotlib`."
        ) from err
    a, s, t = matrix.rate.shape
    cols = min(a, 3)
    rows = -(-a // cols)
    fig = Figure(figsize=(0.55 * t * cols + 1.5, 0.55 * s * rows + 0.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    image = None
    for i, ax in enumerate(axes):
        if i >= a:
            ax.set_axis_off()
            continue
        rate = matrix.rate[i]
        image = ax.imshow(rate, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_title(matrix.attacks[i], fontsize="small")
        ax.set_xticks(range(t), matrix.targets, rotation=45, ha="right", fontsize="x-small")
        ax.set_yticks(range(s), matrix.sources if i % cols == 0 else [""] * s, fontsize="x-small")
        for (r, c), value in np.ndenumerate(rate):
            ax.text(c, r, "–" if np.isnan(value) else f"{value:.{digits}f}", ha="center",
                    va="center", fontsize="xx-small", color="w" if value < 0.6 else "k")  # fmt: skip
    fig.colorbar(image, ax=list(axes[:a]), shrink=0.8, label="transfer success")
    fig.supxlabel("target", fontsize="small")
    fig.supylabel("source", fontsize="small")
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
