"""Attacks per second: jaxadv beside torchattacks, Foolbox 3, ART and a hand-written JAX loop.

Run from anywhere (the checkout this file lives in is benchmarked):

    python benchmarks/peers.py                                   # batch 128, every attack/peer
    python benchmarks/peers.py --batches 32,512 --attacks pgd-linf --rounds 3
    python benchmarks/peers.py --quick --libs jaxadv,hand        # the smoke test
    python benchmarks/peers.py --device gpu                      # torch on cuda, JAX on the GPU

One victim (the C&W CIFAR-10 net, identical weights in PyTorch and Flax), one input batch, the
same attack settings; every row of a batch size runs in this one process, timed in interleaved
rounds; ratios are paired within a round. Peak memory comes from one fresh subprocess per row.
Peers that do not import are skipped with a note. benchmarks/README.md ("peers.py") documents
every row, the settings and a measured table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE), str(_HERE.parent)):  # _timing, pgd_linf, and this checkout's jaxadv
    if _path not in sys.path:
        sys.path.insert(0, _path)


def _wanted_device(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith("--device="):
            return arg.split("=", 1)[1]
        if arg == "--device" and i + 1 < len(argv):
            return argv[i + 1]
    return "auto"


if __name__ == "__main__" and _wanted_device(sys.argv[1:]) == "cpu":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # before JAX initialises a backend
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # honest GPU memory numbers

import _peer_libs  # noqa: E402
import _timing  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pgd_linf  # noqa: E402

from jaxadv import _compile  # noqa: E402
from jaxadv.attacks import _driver, cw_l2, mi_fgsm, pgd  # noqa: E402
from jaxadv.models import _cw_net  # noqa: E402
from jaxadv.models._converters import from_torch_state_dict  # noqa: E402
from jaxadv.models._victim import from_flax  # noqa: E402

INPUT_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
LIBS = ("jaxadv", "hand", "torchattacks", "foolbox-pt", "foolbox-jax", "art")
BASELINE = "torchattacks"
ATOL = 1e-5  # pixels farther apart than this count as different
SWEEP_K = 8


@dataclasses.dataclass(frozen=True)
class Spec:
    """One attack's settings, expressed identically in every library.

    ``step`` is the step length α (PGD, MI-FGSM) or Adam's learning rate (C&W); ``const`` is
    C&W's one trade-off constant (no binary search); ``decay`` is MI-FGSM's μ.
    """

    kind: str
    steps: int
    eps: float = 0.0
    step: float = 0.0
    decay: float = 1.0
    const: float = 0.0

    def describe(self) -> str:
        if self.kind == "cw-l2":
            return (f"{self.steps} Adam steps, lr {self.step:g}, c {self.const:g}, kappa 0, "
                    "1 search step, no early abort")
        eps = f"{self.eps * 255:g}/255" if self.eps < 1 / 8 else f"{self.eps:g}"
        step = f"{self.step * 255:g}/255" if self.eps < 1 / 8 else f"{self.step:g}"
        extra = f", decay {self.decay:g}" if self.kind == "mi-fgsm" else ""
        return f"{self.steps} steps, eps {eps}, step {step}{extra}, no random start, CE"


SPECS = {
    "pgd-linf": Spec("pgd-linf", steps=10, eps=8 / 255, step=2 / 255),
    "pgd-l2": Spec("pgd-l2", steps=10, eps=0.5, step=0.1),
    "mi-fgsm": Spec("mi-fgsm", steps=10, eps=8 / 255, step=2 / 255, decay=1.0),
    "cw-l2": Spec("cw-l2", steps=20, step=0.01, const=0.2),
}
# Known algorithmic differences (same settings, another update): excluded from the agreement flag.
DIFFERS = {
    ("foolbox-pt", "mi-fgsm"): "accumulates sign(g), not g/|g|_1",
    ("foolbox-jax", "mi-fgsm"): "accumulates sign(g), not g/|g|_1",
}


def jaxadv_attack(spec: Spec):
    """The jaxadv attack and its hyper-parameters for ``spec``."""
    if spec.kind in ("pgd-linf", "pgd-l2"):
        atk = pgd(norm=spec.kind[4:], steps=spec.steps, random_start=False)
        return atk, atk.hparams(eps=spec.eps, step_size=spec.step)
    if spec.kind == "mi-fgsm":
        atk = mi_fgsm(steps=spec.steps)
        return atk, atk.hparams(eps=spec.eps, step_size=spec.step, decay=spec.decay)
    atk = cw_l2(steps=spec.steps, search_steps=1)
    return atk, atk.hparams(step_size=spec.step, initial_const=spec.const, kappa=0.0)


# -- the problem -------------------------------------------------------------------------------


def make_problem(batch: int, torch_device: str | None, seed: int = 0) -> dict[str, Any]:
    """The victim in Flax (and in PyTorch when torch imports), images, labels, their tensors.

    With torch, the weights are PyTorch's default init under ``manual_seed(seed)``, converted by
    ``from_torch_state_dict``; without it, Flax's init with ``key(seed)``. Images are uniform in
    [0, 1] (``key(seed + 1)``); labels are the clean predictions.
    """
    module = _cw_net.CWNet(num_classes=NUM_CLASSES)
    problem: dict[str, Any] = {"module": module, "torch_model": None, "torch_dev": torch_device}
    if torch_device is not None:
        import torch

        model = _peer_libs.torch_twin(seed).to(torch_device)
        variables = from_torch_state_dict(model.state_dict(), module, INPUT_SHAPE)
        problem["torch_model"] = model
    else:
        variables = jax.jit(module.init)(jax.random.key(seed), jnp.zeros((1,) + INPUT_SHAPE))
    victim = from_flax(module, variables, input_shape=INPUT_SHAPE, num_classes=NUM_CLASSES)
    images = jax.random.uniform(jax.random.key(seed + 1), (batch,) + INPUT_SHAPE, jnp.float32)
    labels = _predict(victim, images)
    problem.update(variables=variables, victim=victim, images=images, labels=labels,
                   key=jax.random.key(seed + 2))
    x_np = np.ascontiguousarray(np.transpose(np.asarray(images), (0, 3, 1, 2)))
    y_np = np.asarray(labels).astype(np.int64)
    problem.update(x_np=x_np, y_np=y_np)
    if torch_device is not None:
        problem["x_t"] = torch.from_numpy(x_np).to(torch_device)
        problem["y_t"] = torch.from_numpy(y_np).to(torch_device)
        with torch.no_grad():
            torch_logits = problem["torch_model"](problem["x_t"]).cpu().numpy()
        flax_logits = np.asarray(victim.batch(images))
        problem["logit_diff"] = float(np.max(np.abs(torch_logits - flax_logits)))
        problem["label_agree"] = float(np.mean(np.argmax(torch_logits, -1) == y_np))
    return problem


@jax.jit
def _predict(victim, images):
    return jnp.argmax(victim.batch(images), axis=-1).astype(jnp.int32)


def robust_accuracy(problem: dict[str, Any], x_adv: np.ndarray) -> float:
    """Fraction still classified as its label, by the Flax victim (one judge for every row)."""
    return float(jnp.mean(_predict(problem["victim"], jnp.asarray(x_adv)) == problem["labels"]))


# -- the hand-written JAX loops ----------------------------------------------------------------


def _per_example_loss(spec: Spec, module, variables, x, x0, labels):
    """Per-example objective to minimise and the logits: −CE, or C&W's ‖x−x0‖² + c·margin."""
    logits = module.apply(variables, x)
    if spec.kind != "cw-l2":
        log_p = jax.nn.log_softmax(logits, axis=-1)
        return jnp.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0], logits
    own = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
    other = jnp.max(jnp.where(jax.nn.one_hot(labels, NUM_CLASSES) > 0, -jnp.inf, logits), -1)
    margin = jnp.maximum(own - other, 0.0)
    dist = jnp.sum(jnp.square(x - x0), axis=(1, 2, 3))
    return dist + spec.const * margin, logits


def _bcast(v, like):
    return v.reshape((-1,) + (1,) * (like.ndim - 1))


def hand_attack(spec: Spec, module) -> Callable:
    """``(variables, x0, labels) -> x_adv`` for a whole batch, a Python loop under ``jit``.

    Written from the papers, independently of jaxadv: per-example gradients of the summed loss;
    ℓ∞ sign steps / ℓ2 normalised steps with projection onto the ball and [0, 1] (Madry et al.
    2018), MI-FGSM's ``m ← μm + g/‖g‖₁`` (Dong et al. 2018), C&W's Adam on ``w`` with
    ``x = (tanh w + 1)/2`` (Carlini & Wagner 2017). It returns what jaxadv returns: the best
    iterate (fooled first; then lowest loss, or for C&W smallest ℓ2 among the fooled), with the
    iterate after the last step evaluated for PGD/MI-FGSM (one more forward) and not for C&W.
    """
    cw = spec.kind == "cw-l2"

    def attack(variables, x0, labels):
        n = x0.shape[0]

        def to_x(theta):
            return 0.5 * (jnp.tanh(theta) + 1.0) if cw else x0 + theta

        def objective(theta):
            x = to_x(theta)
            loss, logits = _per_example_loss(spec, module, variables, x, x0, labels)
            return jnp.sum(loss), (loss, logits, x)

        def keep(best, loss, logits, x):
            fooled = jnp.argmax(logits, -1) != labels
            rank = jnp.where(fooled, jnp.sqrt(jnp.sum(jnp.square(x - x0), (1, 2, 3))), loss) \
                if cw else loss
            b_x, b_ok, b_rank = best
            better = (fooled & ~b_ok) | ((fooled == b_ok) & (rank < b_rank))
            return (jnp.where(_bcast(better, x), x, b_x), jnp.where(better, fooled, b_ok),
                    jnp.where(better, rank, b_rank))

        if cw:
            theta = jnp.arctanh((2.0 * x0 - 1.0) * (1.0 - 1e-6))
        else:
            theta = jnp.zeros_like(x0)
        state = (jnp.zeros_like(x0), jnp.zeros_like(x0))  # momentum / Adam m, v
        best = (x0, jnp.zeros((n,), bool), jnp.full((n,), jnp.inf, x0.dtype))
        for t in range(1, spec.steps + 1):
            (_, (loss, logits, x)), g = jax.value_and_grad(objective, has_aux=True)(theta)
            best = keep(best, loss, logits, x)
            if cw:
                m = 0.9 * state[0] + 0.1 * g
                v = 0.999 * state[1] + 0.001 * jnp.square(g)
                m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.999**t)
                theta = theta - spec.step * m_hat / (jnp.sqrt(v_hat) + 1e-8)
                state = (m, v)
                continue
            if spec.kind == "pgd-l2":
                norm = jnp.sqrt(jnp.sum(jnp.square(g), (1, 2, 3)))
                theta = theta - spec.step * g / _bcast(jnp.maximum(norm, 1e-30), g)
                dn = jnp.sqrt(jnp.sum(jnp.square(theta), (1, 2, 3)))
                theta = theta * _bcast(jnp.minimum(1.0, spec.eps / jnp.maximum(dn, 1e-30)), g)
            else:
                if spec.kind == "mi-fgsm":
                    l1 = jnp.sum(jnp.abs(g), (1, 2, 3))
                    state = (spec.decay * state[0] + g / _bcast(jnp.maximum(l1, 1e-30), g),
                             state[1])
                    g = state[0]
                theta = jnp.clip(theta - spec.step * jnp.sign(g), -spec.eps, spec.eps)
            theta = jnp.clip(x0 + theta, 0.0, 1.0) - x0
        if not cw:
            _, (loss, logits, x) = objective(theta)
            best = keep(best, loss, logits, x)
        return jnp.clip(best[0], 0.0, 1.0)

    return attack


# -- rows ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    """One timed program: ``call()`` runs it once; ``compile()`` (if any) builds it first."""

    lib: str
    attack: str
    batch: int
    call: Callable[[], Any] | None = None
    compile: Callable[[], None] | None = None
    gflop: float | None = None  # FLOPs of one call (XLA cost analysis), for FLOP/s
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.lib}|{self.attack}|{self.batch}"


def _cost_gflop(program) -> float | None:
    """XLA's FLOP count of a lowered or compiled program, in GFLOP (None: not available)."""
    cost = program.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
    return float(cost["flops"]) / 1e9 if cost and "flops" in cost else None


def forward_mflop() -> float:
    """Multiply-adds × 2 of one C&W-net forward pass on one 32×32×3 image (hand count): convs
    30²·32·27, 28²·32·288, 12²·64·288, 10²·64·576, dense 1600·200, 200·200, 200·10."""
    macs = (30 * 30 * 32 * 27 + 28 * 28 * 32 * 288 + 12 * 12 * 64 * 288 + 10 * 10 * 64 * 576
            + 1600 * 200 + 200 * 200 + 200 * 10)
    return 2 * macs / 1e6


def hand_count_gflop(spec: Spec, batch: int) -> float:
    """The attack's FLOPs by hand: each step one forward and one input-gradient backward (the
    same multiply-adds again), plus the forward that evaluates the last iterate (not for C&W)."""
    passes = 2 * spec.steps + (0 if spec.kind == "cw-l2" else 1)
    return passes * forward_mflop() * batch / 1e3


# jaxadv's ``max_batch`` (examples per compiled call): None the library's default (CPU 128);
# ``--max-batch 0`` runs every batch as one call.
JAXADV_MAX_BATCH: int | None = None


def _jaxadv_max_batch(batch: int) -> int | None:
    return batch if JAXADV_MAX_BATCH == 0 else JAXADV_MAX_BATCH


def jaxadv_row(spec: Spec, problem) -> Row:
    """``attack.batch`` as a user calls it (validation included), compiled ahead of time.

    The executables are jaxadv's own (``_driver.compile_drive``, which ``compile_batch`` uses);
    on CPU (unrolled programs) their XLA cost analyses, summed over the phases the driver runs,
    give the attack's FLOPs.
    """
    atk, hp = jaxadv_attack(spec)
    victim, images, labels, key = (problem[k] for k in ("victim", "images", "labels", "key"))
    row = Row("jaxadv", spec.kind, images.shape[0])
    box: dict[str, Any] = {}
    max_batch = _jaxadv_max_batch(images.shape[0])

    def build():
        prepared = atk._prepare(victim, hp, images, labels, key, None)
        box["exes"] = exes = _driver.compile_drive(
            atk, None, victim, hp, *prepared, max_batch=max_batch
        )
        # The executables run one call's share of the batch, once per call.
        calls, _ = _driver.batch_layout(images.shape[0], max_batch or _compile.max_batch())
        if jax.default_backend() != "cpu":
            row.gflop = None  # a rolled scan: XLA counts its body once, not once per step
        elif _driver.WHOLE in exes:
            row.gflop = calls * _cost_gflop(exes[_driver.WHOLE])
        else:
            row.gflop = calls * sum(_cost_gflop(exes[p]) for p in _driver.plan(atk))

    def call():
        prepared = atk._prepare(victim, hp, images, labels, key, None)
        return _driver.drive(atk, None, victim, hp, *prepared, box["exes"], max_batch).x_adv

    row.compile, row.call = build, call
    return row


def _aot_row(lib, spec_kind, batch, fun, *args) -> Row:
    row = Row(lib, spec_kind, batch)
    box: dict[str, Any] = {}

    def build():
        lowered = fun.lower(*args)
        # Counted before optimisation: exact for these loop-free programs on every backend
        # (a compiled while loop would be counted once, not once per trip).
        row.gflop = _cost_gflop(lowered)
        box["exe"] = exe = lowered.compile()
        if row.gflop is None:  # some backends only count compiled programs
            row.gflop = _cost_gflop(exe)

    row.compile, row.call = build, lambda: box["exe"](*args)
    return row


def hand_row(spec: Spec, problem) -> Row:
    fun = _compile.jit(hand_attack(spec, problem["module"]))
    args = (problem["variables"], problem["images"], problem["labels"])
    return _aot_row("hand", spec.kind, problem["images"].shape[0], fun, *args)


def bound_row(spec: Spec, problem) -> Row:
    """``spec.steps`` chained fwd+bwd passes of the batch, no attack logic (pgd_linf's bound)."""
    fun = _compile.jit(pgd_linf.bound(problem["module"], passes=spec.steps))
    args = (problem["variables"], problem["images"], problem["labels"])
    return _aot_row("bound", spec.kind, problem["images"].shape[0], fun, *args)


def matmul_row(n: int) -> Row:
    """A large float32 matmul: the measured FLOP/s peak of this backend."""
    a = jax.random.normal(jax.random.key(7), (n, n), jnp.float32)
    fun = jax.jit(lambda a, b: a @ b)
    row = _aot_row("matmul", f"{n}x{n}", 0, fun, a, a)
    row.gflop = 2 * n**3 / 1e9
    build = row.compile

    def compile_():
        build()
        row.gflop = 2 * n**3 / 1e9  # the textbook count (XLA's agrees)

    row.compile = compile_
    return row


def peer_row(lib: str, spec: Spec, problem) -> Row:
    row = Row(lib, spec.kind, problem["images"].shape[0])
    call = _peer_libs.RUNNERS[lib](spec, problem)
    if call is None:
        row.note = "cannot express this attack identically: skipped"
    row.call = call
    row.note = DIFFERS.get((lib, spec.kind), row.note)
    return row


def make_row(lib: str, spec: Spec, problem) -> Row:
    if lib == "jaxadv":
        return jaxadv_row(spec, problem)
    if lib == "hand":
        return hand_row(spec, problem)
    if lib == "bound":
        return bound_row(spec, problem)
    return peer_row(lib, spec, problem)


# -- the eps sweep -------------------------------------------------------------------------------


def sweep_rows(problem) -> tuple[list[Row], dict[str, Any]]:
    """K=8 eps values of PGD-ℓ∞ (step = eps/4): one ``attack.sweep`` call against K calls of
    ``attack.batch``, both as a user calls them; compile counts from jaxadv's jit cache."""
    spec = SPECS["pgd-linf"]
    atk = pgd(norm="linf", steps=spec.steps, random_start=False)
    eps = np.arange(1, SWEEP_K + 1, dtype=np.float32) / 255
    grid = atk.hparams(eps=eps, step_size=eps / 4)
    singles = [atk.hparams(eps=e, step_size=e / 4) for e in eps]
    victim, images, labels, key = (problem[k] for k in ("victim", "images", "labels", "key"))
    batch = images.shape[0]
    info: dict[str, Any] = {"eps": eps}
    cache = _driver._batched_phase._get().top_level

    def counted(name, fn):
        def compile_():
            before = cache._cache_size()
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            first = time.perf_counter() - t0
            info[name + " compiles"] = cache._cache_size() - before
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            # First call minus second (clamped at 0: noise can exceed a reused compile; K calls
            # of `attack.batch` reuse the executable the jaxadv row compiled for these shapes).
            info[name + " compile s"] = max(0.0, first - (time.perf_counter() - t0))
        return compile_

    vmapped = Row("sweep", f"vmap K={SWEEP_K}", batch,
                  call=lambda: atk.sweep(victim, grid, images, labels, key).x_adv)
    loop = Row("sweep", f"{SWEEP_K} calls", batch,
               call=lambda: jnp.stack([atk.batch(victim, hp, images, labels, key).x_adv
                                       for hp in singles]))
    vmapped.compile = counted(vmapped.name, vmapped.call)
    loop.compile = counted(loop.name, loop.call)
    return [vmapped, loop], info


# -- timing --------------------------------------------------------------------------------------


def first_calls(rows: list[Row]) -> tuple[dict[str, float], dict[str, Any]]:
    """Compile seconds (ahead of time; peers: first call minus second) and each row's output."""
    compile_s, outputs = {}, {}
    for row in rows:
        if row.compile is not None:
            t0 = time.perf_counter()
            row.compile()
            compile_s[row.name] = time.perf_counter() - t0
            _, outputs[row.name] = _timing.timed(row.call)
        else:
            first, outputs[row.name] = _timing.timed(row.call)
            compile_s[row.name] = max(0.0, first - _timing.timed(row.call)[0])
    return compile_s, outputs


def interleaved(rows: list[Row], rounds: int, seed: int = 0) -> dict[str, list[float]]:
    """Seconds per call, one call per row per round, rows in a fresh random order each round."""
    rng = random.Random(seed)
    times: dict[str, list[float]] = {row.name: [] for row in rows}
    for r in range(rounds):
        t0 = time.perf_counter()
        for row in rng.sample(rows, len(rows)):
            times[row.name].append(_timing.timed(row.call)[0])
        print(f"  round {r + 1}/{rounds}: {time.perf_counter() - t0:.1f} s", flush=True)
    return times


# -- peak memory, one fresh process per row ---------------------------------------------------


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Resets this process's peak RSS (VmHWM) to its current RSS (Linux ≥ 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_mb("VmHWM") is not None


def memory_child(lib: str, attack: str, batch: int, device: str) -> None:
    """(In a fresh process.) Prints the peak RSS of building and running ONE row, over the RSS
    after imports and set-up."""
    torch_dev = _torch_device(device)
    if lib in _peer_libs.MODULES:
        for name in _peer_libs.MODULES[lib]:
            __import__(name)
    problem = make_problem(batch, torch_dev)
    if lib in ("foolbox-jax",) or lib in ("jaxadv", "hand", "bound"):
        jax.block_until_ready(problem["images"])
    # Peak RSS only grows: reset it to the current RSS, so that a peak reached while setting up
    # (imports, weight conversion) does not hide the row's own; else fall back to ru_maxrss.
    exact = _reset_peak()
    base = _status_mb("VmRSS") if exact else _maxrss_mb()
    spec = SPECS[attack]
    row = make_row(lib, spec, problem)
    if row.compile is not None:
        row.compile()
    out = {"peak_mb": None}
    if row.call is not None:
        _timing.timed(row.call)
        out["peak_mb"] = (_status_mb("VmHWM") if exact else _maxrss_mb()) - base
        if torch_dev == "cuda" and lib in _peer_libs.MODULES and lib != "foolbox-jax":
            import torch

            out["device_mb"] = torch.cuda.max_memory_allocated() / 2**20
        elif jax.default_backend() != "cpu":
            stats = jax.devices()[0].memory_stats() or {}
            out["device_mb"] = stats.get("peak_bytes_in_use", 0) / 2**20
    print("MEMORY " + json.dumps(out))


def measure_memory(lib: str, attack: str, batch: int, device: str, tf32: bool) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child",
           f"{lib}:{attack}:{batch}", "--device", device] + (["--tf32"] if tf32 else [])
    if JAXADV_MAX_BATCH is not None:
        cmd += ["--max-batch", str(JAXADV_MAX_BATCH)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return {}
    for line in proc.stdout.splitlines():
        if line.startswith("MEMORY "):
            return json.loads(line[len("MEMORY "):])
    print(f"  note: memory of {lib} {attack} {batch} not measured: "
          f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return {}


# -- the report ----------------------------------------------------------------------------------


def _spread(values: list[float], digits: int) -> str:
    med, lo, hi = _timing.summary(values)
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


COLUMNS = (("row", 14), ("attack", 10), ("batch", 6), ("img/s med (min-max)", 22),
           ("compile s", 10), ("/torchatk", 20), ("robust", 7), ("max|dx|", 8),
           ("px!=jaxadv%", 12), ("peak MB", 8), ("", 0))


def _line(*cells: str) -> str:
    parts = []
    for i, ((_, width), cell) in enumerate(zip(COLUMNS, cells)):
        parts.append(f"{cell:<{width}}" if i < 2 or i == len(COLUMNS) - 1 else f"{cell:>{width}}")
    return " ".join(parts).rstrip()


def report_batch(batch, rows, compile_s, outputs, times, memory, problem) -> list[dict]:
    """Prints one batch size's rows; returns them as records (for the smoke test)."""
    records = []
    ref_name = {r.attack: r.name for r in rows if r.lib == "jaxadv"}
    base_name = {r.attack: r.name for r in rows if r.lib == BASELINE and r.call is not None}
    for row in rows:
        flag = row.note
        if row.call is None:
            print(_line(row.lib, row.attack, str(batch), "-", "-", "-", "-", "-", "-", "-",
                        row.note))
            continue
        t = times[row.name]
        n_img = batch * (SWEEP_K if row.lib == "sweep" else 1)
        speeds = [n_img / s for s in t]
        if row.lib == "matmul":  # no images: its speed column is GFLOP/s
            speeds = [row.gflop / s for s in t]
            flag = flag or "speed column: GFLOP/s"
        rec = {"lib": row.lib, "attack": row.attack, "batch": batch,
               "img_s": _timing.summary(speeds), "compile_s": compile_s[row.name]}
        vs = "-"
        if row.attack in base_name and row.lib not in ("matmul", "sweep"):
            ratio = _timing.paired_speed_ratio(times, row.name, base_name[row.attack])
            vs, rec["vs_torchattacks"] = _spread(ratio, 2), _timing.summary(ratio)
        acc = dx = px = "-"
        if row.lib not in ("bound", "matmul", "sweep"):
            x = _peer_libs.to_nhwc(outputs[row.name])
            rec["x_adv"] = x
            rec["robust"] = robust_accuracy(problem, x)
            acc = f"{rec['robust']:.3f}"
            if row.attack in ref_name:
                ref = np.asarray(outputs[ref_name[row.attack]])
                diff = np.abs(x - ref)
                rec["max_dx"], rec["px_diff"] = float(diff.max()), 100 * float(np.mean(diff > ATOL))
                dx, px = f"{rec['max_dx']:.1e}", f"{rec['px_diff']:.2f}"
                ref_acc = robust_accuracy(problem, ref)
                # C&W's unfooled x_adv are intermediate iterates (jaxadv) or the clean image
                # (peers): only its robust accuracy is compared, as for PGD-ℓ2.
                # ℓ2 steps move every pixel a little, so any rounding difference shows in most
                # pixels: only the sign-step attacks are held to the pixel count.
                moved = rec["px_diff"] > 5.0 and row.attack in ("pgd-linf", "mi-fgsm")
                if not flag and (abs(rec["robust"] - ref_acc) > 0.05 or moved):
                    flag = "DISAGREES with jaxadv"
        mem = memory.get(row.name, {})
        peak = "-" if mem.get("peak_mb") is None else f"{mem['peak_mb']:.0f}"
        if mem.get("device_mb") is not None:
            peak += f"/{mem['device_mb']:.0f}"
        rec["peak_mb"] = mem.get("peak_mb")
        records.append(rec)
        print(_line(row.lib, row.attack, str(batch), _spread(speeds, 1),
                    f"{compile_s[row.name]:.1f}", vs, acc, dx, px, peak, flag))
    return records


def report_goals(batch, rows, times, records) -> None:
    """Paired ratios against the bound, Foolbox-on-JAX and the matmul peak."""
    by = {(r.lib, r.attack): r for r in rows if r.call is not None}
    mm = next((r for r in rows if r.lib == "matmul"), None)
    print()
    head = f"{'ratio (paired per round), batch ' + str(batch):<52}{'med (min-max)':>22}"
    print(head)
    print("-" * len(head))
    for attack in SPECS:
        if ("jaxadv", attack) not in by:
            continue
        ja = by["jaxadv", attack]
        hand = by.get(("hand", attack))
        if jax.default_backend() != "cpu":
            # XLA's GPU cost analysis does not count cuDNN convolutions: count by hand.
            flops, source = hand_count_gflop(SPECS[attack], batch), "hand count"
        elif hand is not None and hand.gflop:  # the same passes, unrolled: counted exactly
            flops, source = hand.gflop, "XLA, hand program"
        else:
            flops, source = ja.gflop, "XLA, jaxadv"
        for other, label in (("bound", "bound (goal -> 1.0)"), ("hand", "hand loop"),
                             (BASELINE, "torchattacks"), ("foolbox-jax", "Foolbox on JAX")):
            if (other, attack) in by:
                ratio = _timing.paired_speed_ratio(times, ja.name, by[other, attack].name)
                print(f"{'jaxadv / ' + label + ', ' + attack:<52}{_spread(ratio, 3):>22}")
        if mm is not None and flops:
            achieved = [flops / t for t in times[ja.name]]
            peak = [mm.gflop / t for t in times[mm.name]]
            share = [100 * a / p for a, p in zip(achieved, peak)]
            label = f"jaxadv GFLOP/s ({flops:.1f} GFLOP/call, {source}), {attack}"
            print(f"{label:<52}{_spread(achieved, 1):>22}")
            print(f"{'jaxadv % of matmul peak, ' + attack:<52}{_spread(share, 1):>22}")
    if mm is not None:
        print(f"{'matmul peak GFLOP/s (' + mm.attack + ' f32)':<52}"
              f"{_spread([mm.gflop / t for t in times[mm.name]], 1):>22}")


def report_sweep(batch, rows, times, compile_info, outputs) -> None:
    vm, lp = rows
    print()
    eps = compile_info["eps"] * 255
    print(f"eps sweep, PGD-linf, K={SWEEP_K} eps = {eps[0]:g}..{eps[-1]:g}/255 (step eps/4), "
          f"batch {batch}")
    for row in rows:
        speeds = [SWEEP_K * batch / t for t in times[row.name]]
        print(f"  {row.attack:<14} {_spread(speeds, 1):>22} img/s   compiles: "
              f"{compile_info[row.name + ' compiles']}, compile s: "
              f"{compile_info[row.name + ' compile s']:.1f}")
    ratio = _timing.paired_speed_ratio(times, vm.name, lp.name)
    same = float(np.max(np.abs(np.asarray(outputs[vm.name]) - np.asarray(outputs[lp.name]))))
    print(f"  vmap / {SWEEP_K} calls throughput (paired): {_spread(ratio, 3)}; "
          f"max|x_adv difference| {same:.1e}")


# -- main ----------------------------------------------------------------------------------------


def set_precision(tf32: bool) -> None:
    """The same float32 arithmetic in both frameworks on a GPU: full float32 by default (JAX
    would use TF32 for convolutions and matmuls, PyTorch for cuDNN convolutions only), or TF32
    in both with ``--tf32``."""
    if jax.default_backend() == "cpu":
        return
    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")
    try:
        import torch
    except Exception:  # noqa: BLE001
        return
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32


def _torch_device(device: str) -> str | None:
    try:
        import torch
    except Exception:  # noqa: BLE001
        return None
    if device == "gpu" or (device == "auto" and jax.default_backend() != "cpu"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu"


def _csv(text: str, allowed) -> list:
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if allowed is not None and s not in allowed]
    if bad:
        raise SystemExit(f"unknown value(s) {bad}; choose from {list(allowed)}")
    return items


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="128", help="comma-separated batch sizes (128)")
    parser.add_argument("--attacks", default=",".join(SPECS), help="subset of " + ",".join(SPECS))
    parser.add_argument("--libs", default=",".join(LIBS), help="subset of " + ",".join(LIBS))
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (5)")
    parser.add_argument("--quick", action="store_true",
                        help="batch 8, 1 round, no memory subprocesses, no sweep (smoke test)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    parser.add_argument("--tf32", action="store_true",
                        help="GPU: TF32 matmuls/convolutions in both JAX and PyTorch")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--no-sweep", action="store_true", help="skip the K=8 eps sweep")
    parser.add_argument("--no-bound", action="store_true", help="skip the bound and matmul rows")
    parser.add_argument("--matmul", type=int, default=0, help="matmul size (CPU 2048, GPU 8192)")
    parser.add_argument("--steps", type=int, default=0,
                        help="override every attack's steps (a faster smoke test; not comparable)")
    parser.add_argument("--max-batch", type=int, default=None,
                        help="jaxadv's max_batch, examples per compiled call (default: the "
                        "library's, CPU 128; 0: the whole batch in one call)")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global JAXADV_MAX_BATCH
    JAXADV_MAX_BATCH = args.max_batch
    if args.memory_child:
        lib, attack, batch = args.memory_child.split(":")
        set_precision(args.tf32)
        memory_child(lib, attack, int(batch), args.device)
        return {}

    if args.steps:
        for name, spec in list(SPECS.items()):
            SPECS[name] = dataclasses.replace(spec, steps=args.steps)
    batches = [int(b) for b in _csv(args.batches, None)]
    attacks = _csv(args.attacks, SPECS)
    libs = _csv(args.libs, LIBS)
    rounds = args.rounds
    memory_on, sweep_on = not args.no_memory, not args.no_sweep
    if args.quick:
        batches, rounds, memory_on, sweep_on = [8], min(rounds, 1), False, False
    if args.device == "gpu" and jax.default_backend() == "cpu":
        raise SystemExit("--device gpu: JAX has no GPU backend here (jax.default_backend() = cpu)")
    torch_dev = _torch_device(args.device)
    set_precision(args.tf32)
    n_mm = args.matmul or (2048 if jax.default_backend() == "cpu" else 8192)

    wanted_peers = [lib for lib in libs if lib in _peer_libs.MODULES]
    peers = []
    for lib in wanted_peers:
        gone = _peer_libs.missing(lib)
        if gone or torch_dev is None and lib != "foolbox-jax":
            print(f"note: skipping {lib}: module {gone or 'torch'!r} does not import")
        else:
            peers.append(lib)
    kind = jax.devices()[0].device_kind
    versions = [f"jax {jax.__version__} on {jax.default_backend()} ({kind})"]
    for mod in ("torch", "torchattacks", "foolbox", "eagerpy", "art"):
        if mod in sys.modules:
            versions.append(f"{mod} {getattr(sys.modules[mod], '__version__', '?')}")
    print("peer benchmark: C&W CIFAR-10 net, uniform images in [0,1], labels = clean predictions")
    print("; ".join(versions) + f"; {os.cpu_count()} CPUs; torch device {torch_dev}")
    for attack in attacks:
        print(f"  {attack:<9} {SPECS[attack].describe()}")

    results: dict[str, Any] = {"records": [], "x_adv": {}}
    for batch in batches:
        problem = make_problem(batch, torch_dev)
        if "logit_diff" in problem:
            tol = 1e-2 if args.tf32 and jax.default_backend() != "cpu" else 1e-4
            ok = problem["logit_diff"] < tol and problem["label_agree"] == 1.0
            print(f"\nbatch {batch}: PyTorch twin vs Flax logits: max|diff| "
                  f"{problem['logit_diff']:.1e}, argmax agree {problem['label_agree']:.3f} "
                  f"-> {'OK' if ok else 'MISMATCH'}")
            if not ok:
                raise SystemExit("the PyTorch and Flax victims differ; refusing to compare")
        else:
            print(f"\nbatch {batch}: torch not importable: Flax-initialised victim, no peers")
        rows = []
        for attack in attacks:
            spec = SPECS[attack]
            for lib in [lib for lib in libs if lib in ("jaxadv", "hand")] + peers:
                rows.append(make_row(lib, spec, problem))
            if not args.no_bound:
                rows.append(bound_row(spec, problem))
        if not args.no_bound:
            rows.append(matmul_row(n_mm))
        s_rows, s_info = ([], {})
        if sweep_on and "jaxadv" in libs:
            s_rows, s_info = sweep_rows(problem)
        live = [r for r in rows + s_rows if r.call is not None]
        print(f"compiling and warming up {len(live)} rows ...", flush=True)
        compile_s, outputs = first_calls(live)
        times = interleaved(live, rounds)
        memory = {}
        if memory_on:
            print("peak memory, one subprocess per row ...", flush=True)
            for row in rows:
                if row.call is not None and row.lib != "matmul":
                    memory[row.name] = measure_memory(row.lib, row.attack, batch, args.device,
                                                     args.tf32)
        print()
        print(_line(*(c for c, _ in COLUMNS)))
        print("-" * 130)
        results["records"] += report_batch(batch, rows, compile_s, outputs, times, memory,
                                           problem)
        report_goals(batch, rows, times, results["records"])
        if s_rows:
            report_sweep(batch, s_rows, times, s_info, outputs)
        results["x_adv"][batch] = {r.name: np.asarray(_peer_libs.to_nhwc(outputs[r.name]))
                                   for r in live if r.lib not in ("matmul", "bound", "sweep")}
        results["images"] = np.asarray(problem["images"])
    print("\nimg/s: images per second (sweep: K x batch per call); compile s: ahead-of-time "
          "compile (peers: first call minus second); /torchatk: throughput ratio, paired per "
          "round; robust: accuracy on x_adv judged by the Flax victim; max|dx|, px!=jaxadv%: "
          "x_adv against jaxadv's; peak MB: peak RSS growth of one fresh process running the "
          "row once (/device MB on GPU)")
    return results


if __name__ == "__main__":
    main()
