"""FID, KID, IS and precision/recall against independent float64 references (scipy, naive loops, closed forms)."""

import itertools

import numpy as np
import pytest
import scipy.linalg

from jgen.eval import metrics


def _features(rng, n, d, shift=0.0):
    a = np.random.default_rng(d).normal(size=(d, d)) / np.sqrt(d)  # correlated like a network's; fixed per d
    return rng.normal(size=(n, d)) @ a + shift


def _scipy_fid(x, y):
    """The textbook formula with scipy's general matrix square root (what pytorch-fid does)."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def test_fid_equals_scipy_reference():
    rng = np.random.default_rng(0)
    for n, d, shift in [(600, 32, 0.3), (1500, 128, 0.0), (400, 8, 2.0)]:
        x, y = _features(rng, n, d), _features(rng, n, d, shift)
        ref = _scipy_fid(x, y)
        assert abs(metrics.fid_from_features(x, y) - ref) / abs(ref) < 1e-6


def test_fid_matches_pytorch_fid():
    fid_score = pytest.importorskip("pytorch_fid.fid_score")  # the parity extra (needs torchvision)
    rng = np.random.default_rng(1)
    x, y = _features(rng, 800, 64), _features(rng, 800, 64, 0.5)
    mine = metrics.frechet_distance(*metrics.gaussian_stats(x), *metrics.gaussian_stats(y))
    theirs = fid_score.calculate_frechet_distance(*metrics.gaussian_stats(x), *metrics.gaussian_stats(y))
    assert abs(mine - theirs) / abs(theirs) < 1e-6


def test_fid_one_dimension_closed_form():
    """For D = 1 the distance is (m1 - m2)^2 + (s1 - s2)^2."""
    assert metrics.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0, rel=1e-12)


def test_fid_zero_against_itself_and_grows_with_noise():
    rng = np.random.default_rng(2)
    x = _features(rng, 2000, 64)
    noise = rng.normal(size=x.shape)
    fids = [metrics.fid_from_features(x, x + s * noise) for s in (0.0, 0.05, 0.2, 0.5, 1.0, 2.0)]
    assert abs(fids[0]) < 1e-8 * np.trace(np.cov(x, rowvar=False))
    assert all(b > a for a, b in zip(fids, fids[1:])), fids


def test_fid_rank_deficient_covariances_stay_real():
    """Fewer samples than dimensions: covariances are singular, the result is finite and >= 0."""
    rng = np.random.default_rng(3)
    x, y = _features(rng, 20, 64), _features(rng, 20, 64, 0.1)
    assert 0 <= metrics.fid_from_features(x, y) < np.inf


def _naive_mmd2(x, y):
    d = x.shape[1]
    k = lambda a, b: (np.dot(a, b) / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(a, b) for a in x for b in y) / (m * n)
    return xx + yy - 2 * xy


def test_kid_equals_naive_unbiased_mmd():
    rng = np.random.default_rng(4)
    x, y = _features(rng, 15, 4), _features(rng, 15, 4, 0.7)
    mean, std = metrics.kid(x, y, num_subsets=3, subset_size=100)  # subsets are the whole sets
    assert mean == pytest.approx(_naive_mmd2(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_near_zero_for_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(5)
    same = metrics.kid(_features(rng, 600, 16), _features(rng, 600, 16), num_subsets=20, subset_size=200)
    shifted = metrics.kid(_features(rng, 600, 16), _features(rng, 600, 16, 0.5), num_subsets=20, subset_size=200)
    far = metrics.kid(_features(rng, 600, 16), _features(rng, 600, 16, 1.5), num_subsets=20, subset_size=200)
    assert abs(same[0]) < 3 * same[1] + 1e-3
    assert far[0] > shifted[0] > same[0] + 3 * same[1]


def test_confident_fraction_counts_softmax_maxima_at_threshold():
    p = np.array([[0.95, 0.05, 0.0], [0.5, 0.3, 0.2], [0.91, 0.09, 0.0], [0.05, 0.06, 0.89]]) + 1e-12
    logits = np.log(p) + np.array([[3.0], [-1.0], [0.5], [7.0]])  # softmax ignores a per-row shift
    assert metrics.confident_fraction(logits) == 0.5  # rows 0 and 2
    assert metrics.confident_fraction(logits, threshold=0.4) == 1.0


def test_inception_score_closed_forms():
    k = 7
    # confident and balanced, stored class by class (as mnist5k is): the shuffle before splitting matters
    one_hot = np.log(np.eye(k)[np.arange(7000) // 1000] * (1 - 1e-12) + 1e-12 / k)
    assert metrics.inception_score(one_hot, num_splits=10)[0] == pytest.approx(k, rel=1e-2)
    assert metrics.inception_score(one_hot, num_splits=7, shuffle_seed=None)[0] == pytest.approx(1.0, abs=1e-6)
    same = np.tile(np.random.default_rng(6).normal(size=(1, k)), (100, 1))  # every image gives the same p(y|x)
    assert metrics.inception_score(same)[0] == pytest.approx(1.0, abs=1e-12)


def test_inception_score_equals_naive_reference():
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(120, 5)) * 3
    scores = []
    for part in np.array_split(logits, 4):
        p = np.array([np.exp(r) / np.exp(r).sum() for r in part])
        py = p.mean(0)
        scores.append(np.exp(np.mean([sum(pi[j] * np.log(pi[j] / py[j]) for j in range(5)) for pi in p])))
    mean, std = metrics.inception_score(logits, num_splits=4, shuffle_seed=None)
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)


def _naive_precision_recall(real, fake, k):
    def radius(points, i):
        return sorted(np.linalg.norm(points[i] - points[j]) for j in range(len(points)) if j != i)[k - 1]

    def share(manifold, queries):
        r = [radius(manifold, i) for i in range(len(manifold))]
        return np.mean([any(np.linalg.norm(q - manifold[i]) <= r[i] for i in range(len(manifold))) for q in queries])

    return share(real, fake), share(fake, real)


def test_precision_recall_equals_naive_reference():
    rng = np.random.default_rng(8)
    real, fake = rng.normal(size=(50, 3)), rng.normal(size=(40, 3)) * 0.6 + 1.0
    got = metrics.precision_recall(real, fake, k=3, block=7)  # odd block size exercises the blocking
    assert got == pytest.approx(_naive_precision_recall(real, fake, 3), abs=1e-12)
    assert 0 < got[0] < 1 and 0 < got[1] < 1


def test_precision_recall_of_a_set_with_itself_is_one():
    x = np.random.default_rng(9).normal(size=(30, 4))
    assert metrics.precision_recall(x, x.copy()) == (1.0, 1.0)


def _ssim_by_windows(a, b, L=2.0):
    """SSIM from its definition, one 11x11 window at a time (weighted moments), float64."""
    g = np.exp(-0.5 * (np.arange(11) - 5.0) ** 2 / 1.5 ** 2)
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            x, y = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            mx, my = (w * x).sum(), (w * y).sum()
            vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
            cxy = (w * (x - mx) * (y - my)).sum()
            vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return np.mean(vals)


def test_ssim_and_psnr_match_their_definitions():
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (3, 16, 14, 1))
    b = np.clip(a + rng.normal(0, 0.3, a.shape), -1, 1)
    got = metrics.ssim(a, b)
    for n in range(3):
        assert got[n] == pytest.approx(_ssim_by_windows(a[n, ..., 0], b[n, ..., 0]), rel=1e-9)
    np.testing.assert_allclose(metrics.ssim(a, a), 1.0, rtol=1e-12)
    mse = np.mean((a - b) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(metrics.psnr(a, b), 10 * np.log10(4 / mse), rtol=1e-12)
    mask = np.zeros(a.shape[:3] + (1,))
    mask[:, :4] = 1
    hole = np.mean((a - b)[:, :4] ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(metrics.psnr(a, b, mask=mask), 10 * np.log10(4 / hole), rtol=1e-12)
