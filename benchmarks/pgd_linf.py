"""PGD-ℓ∞ on the C&W CIFAR-10 net: jaxadv beside a hand-written JAX loop and the fwd+bwd bound.

Run from anywhere (the checkout this file lives in is benchmarked):

    python benchmarks/pgd_linf.py                 # batch 128, 5 rounds
    python benchmarks/pgd_linf.py --batch 32 --rounds 3
    python benchmarks/pgd_linf.py --quick         # batch 8, 2 rounds (the smoke test)

All rows run in this one process, timed in interleaved rounds; ratios are paired within a round.
benchmarks/README.md explains every row and records measured numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE), str(_HERE.parent)):  # _timing, and the jaxadv of this checkout
    if _path not in sys.path:
        sys.path.insert(0, _path)

import _timing
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxadv import _compile
from jaxadv.attacks import pgd
from jaxadv.models import _cw_net, _layers
from jaxadv.models._victim import from_flax

STEPS = 10
EPS = 8 / 255
STEP_SIZE = 2 / 255
INPUT_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
# The bound feeds BOUND_LINK × previous gradient into the next input: a data dependency XLA
# cannot remove, at the cost of one multiply-add per pixel.
BOUND_LINK = 1e-12

LABEL_WIDTH = 42  # row labels are left-aligned in this many columns
TUNED = "ynn option"  # xla_cpu_experimental_ynn_fusion_type=..._INDIVIDUAL_DOT
DEFAULT = "default XLA"

# Row names, in table order. REFERENCE: the row whose x_adv each attack row is compared with
# (other attack rows: jaxadv). ATOL: pixels farther apart than this count as different.
JAXADV = "jaxadv"
HAND = "hand"
BOUND = "bound"
ROLLED_TUNED = f"jaxadv rolled, {TUNED}"
ROLLED_DEFAULT = f"jaxadv rolled, {DEFAULT}"
UNROLLED_TUNED = f"jaxadv unrolled, {TUNED}"
UNROLLED_DEFAULT = f"jaxadv unrolled, {DEFAULT}"
HAND_LAST = "hand, last iterate"
OBVIOUS = f"hand fori_loop+nn.max_pool, {DEFAULT}"
ROLLED_FIXED = f"jaxadv rolled+HWIO conv grad, {TUNED}"
UNROLLED_FIXED = f"jaxadv unrolled+HWIO conv grad, {TUNED}"
BOUND_FIXED = "bound+HWIO conv grad"
UNROLLED_PADDED = f"jaxadv unrolled+padded col2im, {TUNED}"
ROW_NAMES = (
    JAXADV,
    HAND,
    BOUND,
    ROLLED_TUNED,
    ROLLED_DEFAULT,
    UNROLLED_TUNED,
    UNROLLED_DEFAULT,
    HAND_LAST,
    OBVIOUS,
    ROLLED_FIXED,
    UNROLLED_FIXED,
    BOUND_FIXED,
    UNROLLED_PADDED,
)
REFERENCE = {
    JAXADV: HAND,
    HAND_LAST: OBVIOUS,
    OBVIOUS: HAND_LAST,
}
ATOL = 1e-5
# (label, a, b): throughput of a over b, paired per round.
RATIOS = (
    ("jaxadv / bound", JAXADV, BOUND),
    ("hand / bound", HAND, BOUND),
    ("jaxadv / hand", JAXADV, HAND),
    ("hand / hand last iterate", HAND, HAND_LAST),
    (f"unrolled / rolled, {TUNED}", UNROLLED_TUNED, ROLLED_TUNED),
    (f"unrolled / rolled, {DEFAULT}", UNROLLED_DEFAULT, ROLLED_DEFAULT),
    (f"{TUNED} / {DEFAULT}, unrolled", UNROLLED_TUNED, UNROLLED_DEFAULT),
    (f"{TUNED} / {DEFAULT}, rolled", ROLLED_TUNED, ROLLED_DEFAULT),
    ("jaxadv / jaxadv unrolled, own jit", JAXADV, UNROLLED_TUNED),
    ("hand last iterate / obvious", HAND_LAST, OBVIOUS),
    ("rolled+HWIO conv grad / unrolled", ROLLED_FIXED, UNROLLED_TUNED),
    ("unrolled+HWIO conv grad / unrolled", UNROLLED_FIXED, UNROLLED_TUNED),
    ("bound+HWIO conv grad / bound", BOUND_FIXED, BOUND),
    ("rolled+HWIO / bound+HWIO", ROLLED_FIXED, BOUND_FIXED),
    ("unrolled / unrolled+padded col2im", UNROLLED_TUNED, UNROLLED_PADDED),
)


# -- the problem -------------------------------------------------------------------------------


def make_problem(batch: int, seed: int = 0) -> dict[str, Any]:
    """The C&W net with random weights, uniform images and their clean predictions as labels."""
    k_init, k_images, k_attack = jax.random.split(jax.random.key(seed), 3)
    module = _cw_net.CWNet(num_classes=NUM_CLASSES)
    # Jitted: op-by-op dispatch of init and of a forward pass costs seconds on CPU.
    variables = jax.jit(module.init)(k_init, jnp.zeros((1,) + INPUT_SHAPE))
    victim = from_flax(module, variables, input_shape=INPUT_SHAPE, num_classes=NUM_CLASSES)
    images = jax.random.uniform(k_images, (batch,) + INPUT_SHAPE, jnp.float32)
    labels = _predict(victim, images)
    return {
        "module": module,
        "variables": variables,
        "victim": victim,
        "images": images,
        "labels": labels,
        "key": k_attack,
    }


@jax.jit
def _predict(victim, images):
    return jnp.argmax(victim.batch(images), axis=-1).astype(jnp.int32)


@contextlib.contextmanager
def unroll_policy(max_unroll: int):
    """Traces jaxadv's runner with ``_compile.MAX_CPU_UNROLL = max_unroll``, then restores it."""
    saved = _compile.MAX_CPU_UNROLL
    _compile.MAX_CPU_UNROLL = max_unroll
    try:
        yield
    finally:
        _compile.MAX_CPU_UNROLL = saved


def _flax_max_pool(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (2, 2), strides=(2, 2))


@contextlib.contextmanager
def flax_pool():
    """Traces ``CWNet`` with ``flax.linen.max_pool`` in place of its reshape-based pool."""
    if not hasattr(_cw_net, "max_pool_2x2"):
        raise RuntimeError("jaxadv.models._cw_net no longer pools through `max_pool_2x2`.")
    saved = _cw_net.max_pool_2x2
    _cw_net.max_pool_2x2 = _flax_max_pool
    try:
        yield
    finally:
        _cw_net.max_pool_2x2 = saved


# A rolled loop is slow on XLA:CPU because autodiff writes the input gradient of a convolution as a
# convolution whose kernel dims are swapped (dim_labels ..._01oi): outside a loop XLA transposes
# the (loop-invariant) kernel and runs its fast kernel, inside a while body it does not and runs a
# naive convolution, ~30x slower. Writing that gradient with an explicitly flipped and transposed
# HWIO kernel keeps the fast path in any loop form; the row ROLLED_FIXED measures it.

_LAX_CONV = jax.lax.conv_general_dilated
_NHWC = ("NHWC", "HWIO", "NHWC")


def _conv_nhwc(x, k, padding):
    return _LAX_CONV(x, k, (1, 1), padding, dimension_numbers=_NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_hwio_grad(x, k, padding):
    return _conv_nhwc(x, k, padding)


def _conv_hwio_grad_fwd(x, k, padding):
    return _conv_nhwc(x, k, padding), (x, k)


def _conv_hwio_grad_bwd(padding, residuals, g):
    x, k = residuals
    flipped = jnp.transpose(jnp.flip(k, (0, 1)), (0, 1, 3, 2))  # still HWIO
    full = tuple((size - 1 - lo, size - 1 - hi) for size, (lo, hi) in zip(k.shape[:2], padding))
    dx = _conv_nhwc(g, flipped, full)
    dk = jax.vjp(lambda k: _conv_nhwc(x, k, padding), k)[1](g)[0]  # unused by attacks
    return dx, dk


_conv_hwio_grad.defvjp(_conv_hwio_grad_fwd, _conv_hwio_grad_bwd)


_LAX_CONV_SIGNATURE = inspect.signature(_LAX_CONV)
_hwio_grad_uses: list = []  # shapes of the convolutions traced through the fix


def _conv_with_hwio_grad(*args, **kwargs):
    """``lax.conv_general_dilated``; plain 2-D NHWC/HWIO convolutions get the HWIO gradient."""
    call = _LAX_CONV_SIGNATURE.bind(*args, **kwargs)
    call.apply_defaults()
    a = call.arguments
    lhs, rhs, padding = a["lhs"], a["rhs"], a["padding"]
    plain = (
        lhs.ndim == 4
        and jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, a["dimension_numbers"])
        == jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
        and tuple(a["window_strides"]) == (1, 1)
        and all(d == 1 for d in tuple(a["lhs_dilation"] or ()) + tuple(a["rhs_dilation"] or ()))
        and a["feature_group_count"] == a["batch_group_count"] == 1
        and a["precision"] is None
        and a["preferred_element_type"] is None
    )
    if plain and isinstance(padding, str):
        padding = jax.lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], (1, 1), padding)
    if plain:
        padding = tuple((int(lo), int(hi)) for lo, hi in padding)
        plain = all(0 <= p < k for k, pair in zip(rhs.shape[:2], padding) for p in pair)
    if not plain:
        return _LAX_CONV(*args, **kwargs)
    _hwio_grad_uses.append(lhs.shape)
    return _conv_hwio_grad(lhs, rhs, padding)


@contextlib.contextmanager
def hwio_conv_grad():
    """Traces Flax convolutions (which call ``jax.lax.conv_general_dilated``) with the fix."""
    _hwio_grad_uses.clear()
    jax.lax.conv_general_dilated = _conv_with_hwio_grad
    try:
        yield
    finally:
        jax.lax.conv_general_dilated = _LAX_CONV
    if not _hwio_grad_uses:
        raise RuntimeError("No convolution was traced through the HWIO-gradient fix.")


def _im2col_padded_taps(x: jax.Array, kh: int, kw: int) -> jax.Array:
    """conv1's im2col before issue 19's change: taps cut from ``x`` itself, so that its transpose
    (the col2im of the input gradient) is an add of ``kh·kw`` padded taps."""
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    taps = [x[:, i : i + oh, j : j + ow, :] for i in range(kh) for j in range(kw)]
    return jnp.concatenate(taps, axis=-1)


@contextlib.contextmanager
def padded_taps_col2im():
    """Traces CWNet's conv1 with the im2col before issue 19 (``_im2col_padded_taps``)."""
    saved = _layers._im2col
    _layers._im2col = _im2col_padded_taps
    try:
        yield
    finally:
        _layers._im2col = saved


@contextlib.contextmanager
def runner_policy(unroll: int, hwio_grad: bool = False, padded_taps: bool = False):
    """Traces jaxadv's runner with ``MAX_CPU_UNROLL = unroll``, and optionally the HWIO fix or
    the former col2im."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(unroll_policy(unroll))
        if hwio_grad:
            stack.enter_context(hwio_conv_grad())
        if padded_taps:
            stack.enter_context(padded_taps_col2im())
        yield


# -- the hand-written loop and the bound ----------------------------------------------------------


def _neg_ce(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example −CE: the untargeted objective jaxadv minimises, written independently."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0]


def hand_pgd(module: nn.Module, *, loop: str, keep_best: bool) -> Callable:
    """PGD-ℓ∞ on a whole batch: ``(variables, x0, labels) -> x_adv``.

    Per-example gradients come from summing the per-example loss over the batch. Each step takes
    ``delta ← delta − α·sign(∇)`` on the minimised −CE, then clips ``delta`` to the ε-ball and
    ``x0 + delta`` to [0, 1]. With ``keep_best`` it returns what jaxadv returns: the best iterate
    by (fooled, then lowest loss), the iterate after the last step included (one more forward);
    otherwise the last iterate (the peers' semantics). ``loop`` is ``"unrolled"`` (a Python loop
    under jit) or ``"fori"`` (``lax.fori_loop``).
    """

    def attack(variables, x0, labels):
        def objective(delta):
            logits = module.apply(variables, x0 + delta)
            loss = _neg_ce(logits, labels)
            return jnp.sum(loss), (loss, logits)

        def candidate(delta, loss, logits):
            return x0 + delta, loss, jnp.argmax(logits, axis=-1) != labels

        def keep_better(best, new):
            (_, best_loss, best_ok), (_, new_loss, new_ok) = best, new
            better = (new_ok & ~best_ok) | ((new_ok == best_ok) & (new_loss < best_loss))

            def pick(n, b):
                return jnp.where(better.reshape((-1,) + (1,) * (n.ndim - 1)), n, b)

            return jax.tree.map(pick, new, best)

        def step(_, carry):
            delta, best = carry
            (_, (loss, logits)), grad = jax.value_and_grad(objective, has_aux=True)(delta)
            if keep_best:
                best = keep_better(best, candidate(delta, loss, logits))
            delta = jnp.clip(delta - STEP_SIZE * jnp.sign(grad), -EPS, EPS)
            delta = jnp.clip(x0 + delta, 0.0, 1.0) - x0
            return delta, best

        n = x0.shape[0]
        best = (x0, jnp.full((n,), jnp.inf, x0.dtype), jnp.zeros((n,), bool))
        carry = (jnp.zeros_like(x0), best)
        if loop == "fori":
            carry = jax.lax.fori_loop(0, STEPS, step, carry)
        else:
            for i in range(STEPS):
                carry = step(i, carry)
        delta, best = carry
        if not keep_best:
            return jnp.clip(x0 + delta, 0.0, 1.0)
        _, (loss, logits) = objective(delta)
        best = keep_better(best, candidate(delta, loss, logits))
        return jnp.clip(best[0], 0.0, 1.0)

    return attack


def _input_grad(module: nn.Module) -> Callable:
    """One fwd+bwd pass: the gradient of the summed CE with respect to the input batch."""

    def grad(variables, x, labels):
        return jax.grad(lambda x: -jnp.sum(_neg_ce(module.apply(variables, x), labels)))(x)

    return grad


def bound(module: nn.Module, passes: int = STEPS) -> Callable:
    """``passes`` chained fwd+bwd passes of the batch with no attack logic (unrolled)."""
    grad = _input_grad(module)

    def run(variables, x, labels):
        for _ in range(passes):
            x = x + BOUND_LINK * grad(variables, x, labels)
        return x

    return run


def gflop(executable: Any) -> float:
    """XLA's FLOP count of a compiled program, in GFLOP."""
    cost = executable.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) / 1e9


# -- the rows ---------------------------------------------------------------------------------


def unroll_row_name(unroll: int) -> str:
    return f"jaxadv unroll={unroll}, {TUNED}"


def make_rows(problem: dict[str, Any], unrolls: tuple[int, ...] = ()) -> list[_timing.Row]:
    """The rows of ROW_NAMES, then one per extra ``unroll`` (jaxadv, tuned options)."""
    module, variables, victim = problem["module"], problem["variables"], problem["victim"]
    images, labels, key = problem["images"], problem["labels"], problem["key"]
    atk = pgd(norm="linf", steps=STEPS, random_start=False)
    hp = atk.hparams(eps=EPS, step_size=STEP_SIZE)
    keys = jax.random.split(key, images.shape[0])  # what atk.batch hands each example
    tuned = _compile.compiler_options()

    def jaxadv_variant(name, options, unroll, hwio_grad=False, padded_taps=False) -> _timing.Row:
        # `_batched` of jaxadv/attacks/_attack.py (the whole AttackResult, as atk.batch) with our
        # own options and unroll policy (read when the runner is traced, in the trace context).
        fun = jax.jit(jax.vmap(atk.run, in_axes=(None, None, 0, 0, 0, 0)), compiler_options=options)
        args = (victim, hp, images, labels, labels, keys)
        context = functools.partial(runner_policy, unroll, hwio_grad, padded_taps)
        return _timing.jitted_row(
            name, fun, *args, output=lambda result: result.x_adv, trace_context=context
        )

    def hand_variant(name: str, loop: str, keep_best: bool, **row_kwargs) -> _timing.Row:
        options = None if loop == "fori" else tuned
        fun = jax.jit(hand_pgd(module, loop=loop, keep_best=keep_best), compiler_options=options)
        return _timing.jitted_row(name, fun, variables, images, labels, **row_kwargs)

    def bound_variant(name: str, **row_kwargs) -> _timing.Row:
        fun = jax.jit(bound(module), compiler_options=tuned)
        return _timing.jitted_row(name, fun, variables, images, labels, **row_kwargs)

    rows = [
        _timing.Row(JAXADV, lambda: atk.batch(victim, hp, images, labels, key).x_adv),
        hand_variant(HAND, "unrolled", True),
        bound_variant(BOUND),
        jaxadv_variant(ROLLED_TUNED, tuned, 1),
        jaxadv_variant(ROLLED_DEFAULT, None, 1),
        jaxadv_variant(UNROLLED_TUNED, tuned, STEPS),
        jaxadv_variant(UNROLLED_DEFAULT, None, STEPS),
        hand_variant(HAND_LAST, "unrolled", False),
        hand_variant(OBVIOUS, "fori", False, trace_context=flax_pool),
        jaxadv_variant(ROLLED_FIXED, tuned, 1, hwio_grad=True),
        jaxadv_variant(UNROLLED_FIXED, tuned, STEPS, hwio_grad=True),
        bound_variant(BOUND_FIXED, trace_context=hwio_conv_grad),
        jaxadv_variant(UNROLLED_PADDED, tuned, STEPS, padded_taps=True),
    ]
    assert tuple(row.name for row in rows) == ROW_NAMES
    rows += [jaxadv_variant(unroll_row_name(k), tuned, k) for k in unrolls]
    return rows


def single_pass_gflop(problem: dict[str, Any]) -> float:
    """FLOPs of ONE fwd+bwd pass of the batch, to check the bound's chaining adds none."""
    fun = jax.jit(_input_grad(problem["module"]), compiler_options=_compile.compiler_options())
    args = (problem["variables"], problem["images"], problem["labels"])
    return gflop(fun.lower(*args).compile())


# -- the report -------------------------------------------------------------------------------


def robust_accuracy(problem: dict[str, Any], x_adv: jax.Array) -> float:
    """Fraction of images still classified as their label (the clean prediction)."""
    return float(jnp.mean(_predict(problem["victim"], x_adv) == problem["labels"]))


def _spread(values: list[float], digits: int) -> str:
    """``median (min–max)``."""
    med, lo, hi = _timing.summary(values)
    return f"{med:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def _line(label: str, *cells: str) -> str:
    widths = (24, 10, 11, 11, 10)
    return f"{label:<{LABEL_WIDTH}}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths))


def report(problem, rows, unrolls, compile_s, times, outputs, flops) -> None:
    batch = problem["images"].shape[0]
    print(
        f"PGD-linf: {STEPS} steps, eps 8/255, step 2/255, no random start, untargeted CE; "
        "C&W CIFAR-10 net (random init, seed 0)"
    )
    print(
        f"batch {batch}, {len(times[JAXADV])} interleaved rounds; jax {jax.__version__} on "
        f"{jax.default_backend()}, {os.cpu_count()} CPUs; jaxadv's MAX_CPU_UNROLL = "
        f"{_compile.MAX_CPU_UNROLL} (unroll {_compile.loop_unroll(STEPS)} of {STEPS} steps)"
    )
    single = STEPS * flops["single"]
    print(
        f"bound FLOPs (XLA): {flops['chained']:.2f} GFLOP chained, {STEPS} x single pass "
        f"{single:.2f} GFLOP (ratio {flops['chained'] / single:.4f})"
    )
    # PGD keeps the best iterate, so it scores the last one with one more forward pass than the
    # bound's STEPS fwd+bwd passes: jaxadv / bound cannot pass bound / jaxadv FLOPs.
    extra = flops["jaxadv"] / flops["chained"]
    print(
        f"jaxadv FLOPs (XLA): {flops['jaxadv']:.2f} GFLOP, {extra:.4f} x the bound's "
        f"(the ceiling of jaxadv / bound: {1 / extra:.3f})"
    )
    print()
    head = _line("row", "img/s med (min–max)", "compile s", "robust acc", "max|dx|", "px≠ref %")
    print(head)
    print("-" * len(head))
    for row in rows:
        name = row.name
        acc = diff = moved = "-"
        ref = None if name in (BOUND, BOUND_FIXED) else REFERENCE.get(name, JAXADV)
        if ref is not None:
            dx = jnp.abs(outputs[name] - outputs[ref])
            acc = f"{robust_accuracy(problem, outputs[name]):.4f}"
            diff = f"{float(jnp.max(dx)):.1e}"
            moved = f"{100 * float(jnp.mean(dx > ATOL)):.2f}"
        speeds = [batch / t for t in times[name]]
        print(_line(name, _spread(speeds, 1), f"{compile_s[name]:.1f}", acc, diff, moved))
    print()
    head = _line("throughput ratio a / b, paired per round", "med (min–max)")
    print(head)
    print("-" * len(head))
    extra = [
        (f"unrolled / unroll={k}, {TUNED}", UNROLLED_TUNED, unroll_row_name(k)) for k in unrolls
    ]
    for label, a, b in list(RATIOS) + extra:
        print(_line(label, _spread(_timing.paired_speed_ratio(times, a, b), 3)))
    print(_line("bound GFLOP/s", _spread([flops["chained"] / t for t in times[BOUND]], 1)))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128, help="images per batch (128)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (5)")
    parser.add_argument("--quick", action="store_true", help="batch 8, 2 rounds (smoke test)")
    parser.add_argument(
        "--unrolls",
        default="",
        help="extra jaxadv rows with these partial unrolls of the step loop, e.g. 2,5",
    )
    args = parser.parse_args(argv)
    batch, rounds = (8, 2) if args.quick else (args.batch, args.rounds)
    unrolls = tuple(int(k) for k in args.unrolls.split(",") if k.strip())

    problem = make_problem(batch)
    rows = make_rows(problem, unrolls)
    # --quick compiles on two threads and skips the warm-up: a smoke test, not a measurement.
    compile_s, outputs = _timing.first_calls(
        rows, warmup=0 if args.quick else 1, compile_threads=2 if args.quick else 1
    )
    times = _timing.interleaved(rows, rounds)
    flops = {
        "chained": gflop(rows[ROW_NAMES.index(BOUND)].executable),
        "single": single_pass_gflop(problem),
        # The program `atk.batch` runs (all steps unrolled on CPU), compiled by the benchmark.
        "jaxadv": gflop(rows[ROW_NAMES.index(UNROLLED_TUNED)].executable),
    }
    report(problem, rows, unrolls, compile_s, times, outputs, flops)
    return {
        "times": times,
        "compile_s": compile_s,
        "x_adv": outputs,
        "flops": flops,
        "images": problem["images"],
    }


if __name__ == "__main__":
    main()
