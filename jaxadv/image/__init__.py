"""Image operators that attacks and figures build on: graph Laplacian smoothing, bilateral
filtering and adversarial magnification, superpixels."""
