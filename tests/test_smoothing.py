"""One smoothing: the published ``*_smoothed`` (Spark) and the area models (numpy) against an
independent numpy implementation of Marshall (1991), written here from the paper's formulas.

Marshall's global method-of-moments estimator, for areas with population n_i > 0 and count y_i:
m = sum y / sum n, s2 = sum n_i (r_i - m)^2 / sum n, A = s2 - m / mean(n) (zero if negative),
C_i = A / (A + m / n_i), estimate C_i r_i + (1 - C_i) m. zicht floors A at m / median(n); the
reference below applies that floor as a separate step, and the high-variance case checks that
an unfloored A is exactly Marshall's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zicht.features.smoothing import marshall_prior, marshall_smooth
from zicht.models.typology import AreaFeatureTransformer

SEED = 20261201


def marshall_reference(
    y: np.ndarray, n: np.ndarray, *, floor: bool = True
) -> tuple[float, float, np.ndarray]:
    """(m, A, estimates) the textbook way: loops, the variance from the rates, no moments."""
    areas = [i for i in range(len(n)) if n[i] > 0]
    total_n = sum(n[i] for i in areas)
    m = sum(y[i] for i in areas) / total_n
    s2 = sum(n[i] * (y[i] / n[i] - m) ** 2 for i in areas) / total_n
    a = max(s2 - m / (total_n / len(areas)), 0.0)
    if floor:
        a = max(a, m / float(np.median([n[i] for i in areas])))
    est = np.full(len(n), np.nan)
    for i in areas:
        c = a / (a + m / n[i]) if a + m / n[i] > 0 else 0.0
        est[i] = c * (y[i] / n[i]) + (1 - c) * m
    return m, a, est


def _areas(rng: np.random.Generator, spread: float) -> tuple[np.ndarray, np.ndarray]:
    n = rng.integers(0, 3000, size=200).astype(float)
    n[:5] = 0.0  # empty areas: no estimate
    theta = rng.gamma(shape=1 / spread, scale=0.004 * spread, size=200)  # true rates
    y = rng.poisson(theta * n).astype(float)
    return y, n


@pytest.mark.parametrize("spread", [0.01, 3.0])
def test_numpy_smoothing_equals_the_reference(spread: float) -> None:
    print(f"seed {SEED}, spread {spread}")
    y, n = _areas(np.random.default_rng(SEED), spread)
    m, a, expected = marshall_reference(y, n)
    b, a_got = marshall_prior(y, n)
    assert b == pytest.approx(m, rel=1e-12)
    assert a_got == pytest.approx(a, rel=1e-9)
    got = marshall_smooth(y, n, b, a_got)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert np.isnan(got[:5]).all()
    if spread > 1:  # a lot of between-area variance: Marshall's A, not the floor
        _, a_plain, _ = marshall_reference(y, n, floor=False)
        assert a_got == pytest.approx(a_plain, rel=1e-9)
        assert a_plain > m / np.median(n[n > 0])
    else:  # next to none: the floor holds
        assert a_got == pytest.approx(m / np.median(n[n > 0]), rel=1e-12)


def test_area_models_smooth_with_the_same_estimator() -> None:
    y, n = _areas(np.random.default_rng(SEED + 1), 1.0)
    X = pd.DataFrame({"p_incidents": y, "context_inhabitants": n})  # noqa: N806
    X["p_incidents_per_1000"] = np.where(n > 0, y / np.where(n > 0, n, 1) * 1000, np.nan)
    t = AreaFeatureTransformer(
        parts=(("p_incidents_per_1000", "p_incidents", "context_inhabitants", 1000.0),), log=False
    ).fit(X)
    m, _, expected = marshall_reference(y, n)
    got = t.smoothed(X, "p_incidents_per_1000")
    np.testing.assert_allclose(got[5:], expected[5:] * 1000, rtol=1e-9)
    # an area without inhabitants is imputed with the prior mean for the models
    np.testing.assert_allclose(got[:5], m * 1000, rtol=1e-12)


@pytest.mark.spark
def test_published_smoothed_rates_equal_the_reference(spark) -> None:
    """``with_smoothed`` per level and year, against the reference per group."""
    from zicht.features.smoothing import with_smoothed

    rng = np.random.default_rng(SEED + 2)
    frames = []
    for level, year, spread in [("buurt", 2023, 2.0), ("buurt", 2024, 0.01), ("wijk", 2024, 1.0)]:
        y, n = _areas(rng, spread)
        frames.append(
            pd.DataFrame(
                {
                    "level": level,
                    "year": year,
                    "area_code": [f"{level}{i}" for i in range(len(n))],
                    "num": y,
                    "den": n,
                }
            )  # fmt: skip
        )
    pdf = pd.concat(frames, ignore_index=True)
    got = (
        with_smoothed(spark.createDataFrame(pdf), {"smoothed": ("num", "den", 1000.0)})
        .toPandas()
        .set_index(["level", "year", "area_code"])["smoothed"]
    )
    for (level, year), g in pdf.groupby(["level", "year"]):
        _, _, expected = marshall_reference(g["num"].to_numpy(), g["den"].to_numpy())
        values = got.loc[[(level, year, a) for a in g["area_code"]]].to_numpy(dtype=float)
        np.testing.assert_allclose(values, expected * 1000, rtol=1e-9, equal_nan=True)
