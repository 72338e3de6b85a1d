#!/usr/bin/env bash
# The peer table (benchmarks/peers.py), reduced to fit ~5 minutes on one H100/H200.
#
# Expects torch (CUDA build), jax (GPU), flax and optax installed. The peer libraries come as
# wheels in $PEER_WHEELS (default: dist/peer-wheels, which git ignores), fetched beforehand on a
# machine with PyPI access, for Python 3.12 (all pure-python except charset-normalizer and
# scikit-learn, which ART imports):
#
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 -d dist/peer-wheels \
#     torchattacks==3.5.1 foolbox==3.3.4 eagerpy==0.30.0 adversarial-robustness-toolbox==1.20.1 \
#     GitPython==3.2.1 gitdb==4.0.12 smmap==5.0.3 scikit-learn==1.9.1 joblib==1.6.0 \
#     threadpoolctl==3.8.0 tqdm==4.70.1 six==1.17.0 requests==2.34.2 urllib3==2.8.0 idna==3.20 \
#     certifi==2026.10.19.post1 charset-normalizer==3.5.3 setuptools==84.2.1 \
#     typing-extensions==4.16.0 packaging==26.4
#
# Only wheels whose distribution is not installed yet are installed (--no-deps, --no-index), so
# nothing already on the machine (torch, numpy, scipy, jax) is replaced; torchattacks' declared
# torchvision dependency is not needed for the attacks benchmarked. A peer that still does not
# import is skipped by peers.py with a printed note.
#
# Usage: benchmarks/peers_gpu.sh [extra peers.py flags]   (e.g. --rounds 5, --batches 512)
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=${PEER_WHEELS:-dist/peer-wheels}
PY=${PYTHON:-python}

if compgen -G "$WHEELS/*.whl" > /dev/null; then
  todo=()
  for wheel in "$WHEELS"/*.whl; do
    dist=$(basename "$wheel" | cut -d- -f1)
    "$PY" -m pip show "$dist" > /dev/null 2>&1 || todo+=("$wheel")
  done
  if ((${#todo[@]})); then
    echo "installing ${#todo[@]} peer wheel(s) from $WHEELS"
    "$PY" -m pip install -q --no-deps --no-index "${todo[@]}" \
      || "$PY" -m pip install -q --no-deps --no-index --break-system-packages "${todo[@]}" \
      || echo "note: installing the peer wheels failed; peers.py will skip what does not import"
  fi
else
  echo "note: no wheels in $WHEELS; peers.py will skip the peers that do not import"
fi

"$PY" -c "import jax, torch; print('jax', jax.__version__, jax.devices(), '| torch', \
torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) \
if torch.cuda.is_available() else '')"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null || true

# Batches 128 and 512, PGD-linf and C&W-l2, 3 rounds, no memory subprocesses (each re-inits
# CUDA and JAX: ~10 s apiece; run peers.py without --no-memory for the memory column).
timeout 360 "$PY" benchmarks/peers.py --device gpu --batches 128,512 --attacks pgd-linf,cw-l2 \
  --rounds 3 --no-memory "$@"
echo "exit status $?"
