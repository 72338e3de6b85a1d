"""Forms of the C&W net's convolutions and pools, each timed as the forward+backward bound.

The bound of ``pgd_linf.py`` (``passes`` chained forward+backward passes of the batch, no attack
logic, jaxadv's CPU compiler option), built on the same weights with each form of the net, timed
side by side in interleaved rounds in this one process; ratios to the plain form are paired per
round. Before timing, every form's input gradient is compared with the plain form's.

    python benchmarks/conv_forms.py                       # batch 128, 3 passes, 5 rounds, every form
    python benchmarks/conv_forms.py --batch 512 --forms plain,conv1-matmul-grad
    python benchmarks/conv_forms.py --quick               # batch 4, 1 pass, 1 round (smoke test)

Forms (only ``conv1-matmul-grad`` is in the library: CWNet's default; the rest live here):

- ``plain``: ``CWNet(conv1_input_grad="autodiff")``: XLA's convolution and its autodiff gradient,
  the reshape max-pool (``max_pool_2x2``), NHWC — the values of the plain Flax layers;
- ``conv1-matmul-grad``: CWNet's default, conv1's input gradient as matmul + col2im
  (``jaxadv.models._layers.conv_matmul_input_grad``);
- ``all-matmul-grad``: the same for all four convolutions;
- ``im2col-slices``: every convolution as im2col by k² shifted slices × one ``jnp.dot``
  (autodiff gradient: matmul + col2im);
- ``im2col-patches``: every convolution as ``lax.conv_general_dilated_patches`` × one ``jnp.dot``;
- ``im2col-vjp``: im2col-slices forward, and a ``custom_vjp`` whose input gradient is again
  patches × matmul (im2col of the padded cotangent × the flipped, transposed kernel);
- ``nchw``: the whole net in NCHW / OIHW layout (input transposed once);
- ``pool-mask-vjp``: the max-pool as a ``custom_vjp`` whose backward is a mask of the maxima
  (ties share the gradient, as autodiff's reduce-max does);
- ``relu-after-pool``: ``relu(pool(x))`` in place of ``pool(relu(x))`` (equal: both are monotone).

benchmarks/README.md records measured numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE), str(_HERE.parent)):  # _timing, pgd_linf, and the jaxadv of this checkout
    if _path not in sys.path:
        sys.path.insert(0, _path)

import _timing
import flax.linen as nn
import jax
import jax.numpy as jnp
import pgd_linf

from jaxadv import _compile
from jaxadv.models import _cw_net

_NHWC = ("NHWC", "HWIO", "NHWC")


def conv_xla(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=_NHWC)


def _im2col(x, kh, kw):
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    return jnp.concatenate(
        [x[:, i : i + oh, j : j + ow, :] for i in range(kh) for j in range(kw)], axis=-1
    )


def conv_slices(x, k):
    kh, kw, c, f = k.shape
    return jnp.dot(_im2col(x, kh, kw), k.reshape(kh * kw * c, f))


def conv_patches(x, k):
    kh, kw, c, f = k.shape
    p = jax.lax.conv_general_dilated_patches(x, (kh, kw), (1, 1), "VALID", dimension_numbers=_NHWC)
    return jnp.dot(p, k.transpose(2, 0, 1, 3).reshape(c * kh * kw, f))  # patches are (c, kh, kw)


@jax.custom_vjp
def conv_im2col_vjp(x, k):
    return conv_slices(x, k)


def _im2col_vjp_fwd(x, k):
    return conv_slices(x, k), (x, k)


def _im2col_vjp_bwd(res, g):
    x, k = res
    kh, kw, _, _ = k.shape
    padded = jnp.pad(g, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
    dx = conv_slices(padded, jnp.flip(k, (0, 1)).transpose(0, 1, 3, 2))
    dk = jnp.einsum("bhwp,bhwf->pf", _im2col(x, kh, kw), g).reshape(k.shape)
    return dx, dk


conv_im2col_vjp.defvjp(_im2col_vjp_fwd, _im2col_vjp_bwd)


def conv_nchw(x, k):  # x NCHW, k HWIO (the parameter as stored), computed as OIHW
    dims = ("NCHW", "OIHW", "NCHW")
    return jax.lax.conv_general_dilated(x, k.transpose(3, 2, 0, 1), (1, 1), "VALID", dimension_numbers=dims)


def pool_reshape(x):
    b, h, w, c = x.shape
    return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def pool_nchw(x):
    b, c, h, w = x.shape
    return jnp.max(x.reshape(b, c, h // 2, 2, w // 2, 2), axis=(3, 5))


@jax.custom_vjp
def pool_mask(x):
    return pool_reshape(x)


def _pool_fwd(x):
    y = pool_reshape(x)
    return y, (x, y)


def _pool_bwd(res, g):
    x, y = res
    b, h, w, c = x.shape
    hit = (x.reshape(b, h // 2, 2, w // 2, 2, c) == y[:, :, None, :, None, :]).astype(x.dtype)
    share = g[:, :, None, :, None, :] / jnp.sum(hit, axis=(2, 4), keepdims=True)
    return ((hit * share).reshape(x.shape),)


pool_mask.defvjp(_pool_fwd, _pool_bwd)

CONVS = {
    "xla": conv_xla,
    "slices": conv_slices,
    "patches": conv_patches,
    "im2col-vjp": conv_im2col_vjp,
    "nchw": conv_nchw,
}


class _Conv(nn.Module):
    features: int
    form: str

    @nn.compact
    def __call__(self, x):
        c = x.shape[1] if self.form == "nchw" else x.shape[-1]
        k = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, c, self.features))
        b = self.param("bias", nn.initializers.zeros, (self.features,))
        y = CONVS[self.form](x, k)
        return y + (b[:, None, None] if self.form == "nchw" else b)


class FormNet(nn.Module):
    """The C&W net (``CWNet``'s parameter tree) with a chosen convolution and pool form."""

    conv: str = "xla"
    pool: str = "reshape"
    relu_after_pool: bool = False

    @nn.compact
    def __call__(self, x, train=False):
        nchw = self.conv == "nchw"
        pool = pool_nchw if nchw else {"reshape": pool_reshape, "mask": pool_mask}[self.pool]
        if nchw:
            x = x.transpose(0, 3, 1, 2)
        for i, features in enumerate((32, 32, 64, 64)):
            x = _Conv(features, self.conv, name=f"conv{i + 1}")(x)
            if i % 2 == 1:
                x = nn.relu(pool(x)) if self.relu_after_pool else pool(nn.relu(x))
            else:
                x = nn.relu(x)
        if nchw:
            x = x.transpose(0, 2, 3, 1)  # flatten in NHWC order, as CWNet's fc1 expects
        x = x.reshape(x.shape[0], -1)
        for i in range(2):
            x = nn.relu(nn.Dense(200, name=f"fc{i + 1}")(x))
        return nn.Dense(10, name="fc3")(x)


class _AllMatmulGrad(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        from jaxadv.models._layers import Conv2D  # the library's layer, every conv in matmul form

        for i, features in enumerate((32, 32, 64, 64)):
            x = nn.relu(Conv2D(features, (3, 3), input_grad="matmul", name=f"conv{i + 1}")(x))
            if i % 2 == 1:
                x = pool_reshape(x)
        x = x.reshape(x.shape[0], -1)
        for i in range(2):
            x = nn.relu(nn.Dense(200, name=f"fc{i + 1}")(x))
        return nn.Dense(10, name="fc3")(x)


FORMS = {
    "plain": lambda: _cw_net.CWNet(conv1_input_grad="autodiff"),
    "conv1-matmul-grad": lambda: _cw_net.CWNet(conv1_input_grad="matmul"),
    "all-matmul-grad": _AllMatmulGrad,
    "im2col-slices": lambda: FormNet("slices"),
    "im2col-patches": lambda: FormNet("patches"),
    "im2col-vjp": lambda: FormNet("im2col-vjp"),
    "nchw": lambda: FormNet("nchw"),
    "pool-mask-vjp": lambda: FormNet(pool="mask"),
    "relu-after-pool": lambda: FormNet(relu_after_pool=True),
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--passes", type=int, default=3, help="chained fwd+bwd passes per call")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--forms", default=",".join(FORMS), help="comma list; plain is added first")
    parser.add_argument("--quick", action="store_true", help="batch 4, 1 pass, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.passes, args.rounds = 4, 1, 1
    names = ["plain"] + [n for n in args.forms.split(",") if n and n != "plain"]
    unknown = [n for n in names if n not in FORMS]
    if unknown:
        parser.error(f"unknown forms {unknown}; choose from {list(FORMS)}")
    plain = FORMS["plain"]()
    shape = pgd_linf.INPUT_SHAPE
    variables = jax.jit(plain.init)(jax.random.key(0), jnp.zeros((1,) + shape))
    x = jax.random.uniform(jax.random.key(1), (args.batch,) + shape)
    labels = jnp.argmax(jax.jit(plain.apply)(variables, x), -1).astype(jnp.int32)
    options = _compile.compiler_options()
    print(
        f"bound of the C&W net: {args.passes} chained fwd+bwd passes, batch {args.batch}, "
        f"{args.rounds} rounds; jax {jax.__version__} on {jax.default_backend()}"
    )
    rows, grads = [], {}
    for name in names:
        module = FORMS[name]()
        grad = jax.jit(pgd_linf._input_grad(module), compiler_options=options)
        grads[name] = grad(variables, x, labels)
        fun = jax.jit(pgd_linf.bound(module, passes=args.passes), compiler_options=options)
        rows.append(_timing.jitted_row(name, fun, variables, x, labels))
    compile_s, _ = _timing.first_calls(rows, warmup=0 if args.quick else 1)
    times = _timing.interleaved(rows, args.rounds)
    scale = float(jnp.max(jnp.abs(grads["plain"])))
    head = f"{'form':<20}{'img/s (×passes)':>16}{'vs plain, paired (min–max)':>30}{'compile s':>11}"
    print(f"max|input grad of plain| = {scale:.3e}\n{head}{'max|dgrad|':>12}{'grad≠ %':>9}")
    out = {}
    for row in rows:
        name = row.name
        speed = args.batch * args.passes / statistics.median(times[name])
        med, lo, hi = _timing.summary(_timing.paired_speed_ratio(times, name, "plain"))
        dg = jnp.abs(grads[name] - grads["plain"])
        differ = 100 * float(jnp.mean(dg > 1e-6 * scale + 1e-4 * jnp.abs(grads["plain"])))
        print(
            f"{name:<20}{speed:>16.1f}{f'{med:.3f} ({lo:.3f}–{hi:.3f})':>30}"
            f"{compile_s[name]:>11.1f}{float(jnp.max(dg)):>12.1e}{differ:>9.2f}"
        )
        out[name] = {"ratio": (med, lo, hi), "max_dgrad": float(jnp.max(dg)), "differ_pct": differ}
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
