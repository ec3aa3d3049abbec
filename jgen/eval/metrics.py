"""Sample-quality metrics on feature vectors: FID, KID, Inception Score, precision/recall; and the
pixel metrics of restoration (inpainting, super-resolution): PSNR and SSIM.

Everything here is float64 NumPy on [N, D] features (or [N, K] logits, or [N, H, W, C] images), so
the numbers do not depend on the device or the sharding that produced them.
"""

import numpy as np


def gaussian_stats(features):
    """(mean [D], covariance [D, D]) of [N, D] features, float64, unbiased (N - 1), as pytorch-fid."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need [N >= 2, D] features, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrt_psd(a):
    """Symmetric square root of a symmetric positive semi-definite matrix (tiny negative eigenvalues -> 0)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Heusel et al. 2017, eq. 6).

    tr (S1 S2)^(1/2) is computed as the sum of square roots of the eigenvalues of the symmetric PSD
    matrix S1^(1/2) S2 S1^(1/2), which has the same eigenvalues as S1 S2. Unlike scipy's sqrtm of the
    non-symmetric product, this never goes complex and stays accurate when the covariances are singular
    (fewer samples than dimensions).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different dimension: {mu1.shape} vs {mu2.shape}")
    root1 = _sqrt_psd(sigma1)
    eig = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    tr_covmean = np.sum(np.sqrt(np.clip(eig, 0, None)))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fid_from_features(features1, features2) -> float:
    """FID (Heusel et al. 2017, eq. 6): the Frechet distance of Gaussians fitted to two [N, D] feature sets."""
    return frechet_distance(*gaussian_stats(features1), *gaussian_stats(features2))


def polynomial_mmd2(x, y) -> float:
    """Unbiased MMD^2 with the kernel k(a, b) = (a.b / D + 1)^3 (Binkowski et al. 2018, eq. 3)."""
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid(features1, features2, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0):
    """Kernel Inception Distance: (mean, std) of the unbiased MMD^2 over random subsets.

    Each subset draws `subset_size` rows of each set without replacement (fewer if a set is smaller),
    as in Binkowski et al. and clean-fid; the seed makes the subsets repeatable.
    """
    x, y = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    values = [polynomial_mmd2(x[rng.choice(len(x), m, replace=False)], y[rng.choice(len(y), m, replace=False)])
              for _ in range(num_subsets)]
    return float(np.mean(values)), float(np.std(values))


def inception_score(logits, num_splits: int = 10, shuffle_seed=0):
    """(mean, std) over splits of exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016), p from softmax(logits).

    The rows are shuffled (seeded) before splitting: a dataset stored class by class would otherwise give
    splits of one class each and a score near 1. `shuffle_seed=None` keeps the given order.
    """
    logits = np.asarray(logits, np.float64)
    if shuffle_seed is not None:
        logits = logits[np.random.default_rng(shuffle_seed).permutation(len(logits))]
    logp = logits - logits.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    scores = []
    for part in np.array_split(logp, num_splits):
        p = np.exp(part)
        log_py = np.log(p.mean(axis=0))
        scores.append(np.exp(np.mean(np.sum(p * (part - log_py), axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


def confident_fraction(logits, threshold: float = 0.9) -> float:
    """Share of images whose most likely class has softmax probability >= threshold: a sample that the
    classifier cannot call is usually a malformed one, which FID averages away."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(1.0 / np.exp(z).sum(axis=1) >= threshold))  # max softmax = 1 / sum exp(z - max)


def _squared_distances(a, b):
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(d, 0)


def _knn_radii(x, k: int, block: int):
    """Squared distance from each row of x to its k-th nearest other row."""
    radii = np.empty(len(x))
    for i in range(0, len(x), block):
        d = _squared_distances(x[i:i + block], x)
        radii[i:i + block] = np.partition(d, k, axis=1)[:, k]  # index 0 is the row itself (distance 0)
    return radii


def _coverage(manifold, radii, queries, block: int):
    """Fraction of `queries` inside at least one ball (centre in `manifold`, squared radius `radii`)."""
    inside = np.zeros(len(queries), bool)
    for i in range(0, len(queries), block):
        d = _squared_distances(queries[i:i + block], manifold)
        inside[i:i + block] = (d <= radii[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real, fake, k: int = 3, block: int = 1000):
    """Improved precision and recall (Kynkaanniemi et al. 2019): each set's manifold is the union of
    balls reaching every point's k-th nearest neighbour; precision is the share of fakes inside the real
    manifold, recall the share of reals inside the fake one."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples in each set")
    precision = _coverage(real, _knn_radii(real, k, block), fake, block)
    recall = _coverage(fake, _knn_radii(fake, k, block), real, block)
    return precision, recall


def psnr(a, b, data_range: float = 2.0, mask=None):
    """Peak signal-to-noise ratio in dB per image of [N, H, W, C] images (range 2 for [-1, 1]);
    with mask [N, H, W, 1|C] (1 = counted), over the masked pixels only."""
    d = np.square(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    w = np.ones_like(d) if mask is None else np.broadcast_to(np.asarray(mask, np.float64), d.shape)
    mse = (d * w).sum(axis=(1, 2, 3)) / w.sum(axis=(1, 2, 3))
    return 10 * np.log10(data_range ** 2 / np.maximum(mse, 1e-20))


def _gaussian_window(size: int = 11, sigma: float = 1.5):
    g = np.exp(-0.5 * np.square(np.arange(size) - (size - 1) / 2) / sigma ** 2)
    return g / g.sum()


def _filter_valid(x, g):
    """Separable correlation of [N, H, W, C] with the 1-D window g along H and W, 'valid' region."""
    k = len(g)
    x = sum(g[i] * x[:, i:x.shape[1] - k + 1 + i] for i in range(k))
    return sum(g[i] * x[:, :, i:x.shape[2] - k + 1 + i] for i in range(k))


def ssim(a, b, data_range: float = 2.0):
    """Mean structural similarity per image (Wang et al. 2004): 11-tap Gaussian window, sigma 1.5,
    K1 0.01, K2 0.03, over the window positions that fit (as the paper's reference code), channels
    averaged. a, b: [N, H, W, C] with H, W >= 11."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if min(a.shape[1:3]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11, got {a.shape[1]}x{a.shape[2]}")
    g = _gaussian_window()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a ** 2
    var_b = _filter_valid(b * b, g) - mu_b ** 2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    s = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean(axis=(1, 2, 3))
