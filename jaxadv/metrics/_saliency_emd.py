"""Exact earth mover's distance between two 2-D mass maps, solved on the host as a linear program.

MIT's ``EMD.m`` calls FastEMD's ``emd_hat_gd_metric_mex(P, Q, D, 0)`` (Pele & Werman, "Fast and
robust earth mover's distances", ICCV 2009) with ``D`` the Euclidean distance between bin indices.
For a metric ground distance FastEMD first removes the mass two histograms share in each bin,
``min(P_i, Q_i)``, which leaves the optimum unchanged for a metric ground distance and makes
only ``P - Q`` matter; with extra-mass penalty 0 the result is the cheapest flow of
``min(sum P', sum Q')`` units from ``P' = (P - Q)+`` to ``Q' = (Q - P)+``. FastEMD then rounds
masses and costs to integers (about 1e-6 relative error); this module solves the same program
exactly (scipy HiGHS), in float64.
"""

from __future__ import annotations

import numpy as np


def transport_cost(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """EMD-hat (extra-mass penalty 0) between 2-D maps ``p`` and ``q`` of the same shape."""
    from scipy import optimize, sparse  # host-only dependency, imported when EMD is used

    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        return np.asarray(np.nan)
    cols = p.shape[1]
    surplus = (p - q).ravel()
    sources = np.flatnonzero(surplus > 0)
    sinks = np.flatnonzero(surplus < 0)
    if sources.size == 0 or sinks.size == 0:
        return np.asarray(0.0)
    supply, demand = surplus[sources], -surplus[sinks]
    src_r, src_c = np.divmod(sources, cols)
    snk_r, snk_c = np.divmod(sinks, cols)
    cost = np.hypot(src_r[:, None] - snk_r[None, :], src_c[:, None] - snk_c[None, :])
    ns, nt = sources.size, sinks.size
    # Flow f[i, j] flattened row-major: rows of f sum to <= supply, columns to <= demand.
    var = np.arange(ns * nt)
    row_sums = sparse.csr_matrix((np.ones(ns * nt), (var // nt, var)), shape=(ns, ns * nt))
    col_sums = sparse.csr_matrix((np.ones(ns * nt), (var % nt, var)), shape=(nt, ns * nt))
    result = optimize.linprog(
        cost.ravel(),
        A_ub=sparse.vstack([row_sums, col_sums]).tocsr(),
        b_ub=np.concatenate([supply, demand]),
        A_eq=np.ones((1, ns * nt)),
        b_eq=np.array([min(supply.sum(), demand.sum())]),
        bounds=(0, None),
        method="highs",
    )
    if result.status != 0:
        raise RuntimeError(f"EMD transport problem not solved by HiGHS: {result.message}")
    return np.asarray(result.fun)
