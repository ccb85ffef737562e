"""Example data bundled with fastgru.

``load_daily_temperatures()`` returns 8,000 days of daily mean temperature (degrees Celsius)
from 2010-01-01, with a ``Date`` index and one column ``Temp``: the shape of the CSV in the
usual "GRU for temperature forecasting" recipe. The series is **synthetic**: no public-domain
file of that shape ships with Python, so it comes from a documented, seeded generator
(``make_daily_temperatures``) and is bundled as ``fastgru/data/daily_temperatures.csv`` (see
the README beside it). Licence: the same as fastgru's; the data may also be used as public
domain.

The model behind it, for day ``t`` (0 = 2010-01-01), ``w = 2*pi*t / 365.2425``::

    season(t) = 11.5 + 0.03 * t/365.2425            # mean and a slight warming trend (deg/year)
                - 9.0 * cos(w - 2*pi*15/365.2425)   # annual cycle: coldest mid-January
                + 0.8 * cos(2*w)                    # second harmonic: flatter summers and winters
    a(t)      = 0.85 * a(t-1) + 1.2 * e1(t)         # weather anomaly: AR(1), std about 2.3 deg
    temp(t)   = season(t) + a(t) + 1.4 * e2(t)      # plus day-to-day local noise

with ``e1``, ``e2`` independent standard normal draws from ``numpy.random.default_rng(seed)``
(``a`` starts from its stationary distribution), rounded to 0.01 degree. The values span about
-5 to 31 degrees.

What this means for forecasting: the anomaly ``a`` decays toward the seasonal norm, so the
next day is predictable from the recent past better than by "tomorrow = today". The
persistence forecast is the honest baseline (one-step RMSE about 2.3-2.6 degrees); the best
possible one-step forecast has an RMSE about 12-15% lower, and a GRU fitted with the usual
recipe (window 100, 50 units, 10 epochs) gets most of the way there.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ._validation import check_positive_int

__all__ = ["load_daily_temperatures", "make_daily_temperatures", "daily_temperatures_path",
           "load_airline_passengers"]

_N_DAYS = 8000
_START = "2010-01-01"
_SEED = 2010
_YEAR = 365.2425
_PHI = 0.85
_SIGMA_WEATHER = 1.2
_SIGMA_LOCAL = 1.4


def daily_temperatures_path() -> Path:
    """The path of the bundled CSV (columns ``Date,Temp``)."""
    return Path(__file__).resolve().parent / "data" / "daily_temperatures.csv"


def make_daily_temperatures(n_days: int = _N_DAYS, start: str = _START,
                            seed: Optional[int] = _SEED, decimals: Optional[int] = 2):
    """Generate the synthetic daily temperatures (see the module docstring for the model).

    With the defaults this reproduces the bundled CSV. Returns a DataFrame with a daily
    ``DatetimeIndex`` named ``Date`` and one float column ``Temp`` (degrees Celsius).
    ``decimals=None`` skips the rounding.
    """
    import pandas as pd

    n = check_positive_int("n_days", n_days)
    rng = np.random.default_rng(seed)
    e1 = rng.standard_normal(n)
    e2 = rng.standard_normal(n)

    t = np.arange(n, dtype=np.float64)
    w = 2.0 * np.pi * t / _YEAR
    season = (11.5 + 0.03 * t / _YEAR
              - 9.0 * np.cos(w - 2.0 * np.pi * 15.0 / _YEAR)
              + 0.8 * np.cos(2.0 * w))

    anomaly = np.empty(n)
    prev = _SIGMA_WEATHER * e1[0] / np.sqrt(1.0 - _PHI ** 2)  # stationary start
    anomaly[0] = prev
    for i in range(1, n):  # 8,000 steps: a plain loop is fast enough and easy to read
        prev = _PHI * prev + _SIGMA_WEATHER * e1[i]
        anomaly[i] = prev

    temp = season + anomaly + _SIGMA_LOCAL * e2
    if decimals is not None:
        temp = np.round(temp, decimals)
    index = pd.date_range(start, periods=n, freq="D", name="Date")
    return pd.DataFrame({"Temp": temp}, index=index)


def load_daily_temperatures():
    """The bundled example: 8,000 daily temperatures (deg C) from 2010-01-01.

    Returns a DataFrame with a daily ``DatetimeIndex`` named ``Date`` (freq ``"D"``) and one
    column ``Temp``. ``load_daily_temperatures()["Temp"]`` is the Series. Synthetic data: see
    the module docstring and ``fastgru/data/README.md``.
    """
    import pandas as pd

    path = daily_temperatures_path()
    if not path.exists():  # an unusual install without package data: regenerate it
        return make_daily_temperatures()
    df = pd.read_csv(path, parse_dates=["Date"], index_col="Date")
    df.index = pd.DatetimeIndex(df.index, freq="D", name="Date")
    df["Temp"] = df["Temp"].astype(np.float64)
    return df


def load_airline_passengers():
    """Monthly international airline passengers (thousands), January 1949 to December 1960.

    The classic trending, seasonal series (Box and Jenkins, *Time Series Analysis*, series G;
    R's ``AirPassengers``): 144 months, a ``DatetimeIndex`` named ``Month`` (freq ``"MS"``),
    one float column ``Passengers``. Real data, public domain; see ``fastgru/data/README.md``.
    """
    import pandas as pd

    path = Path(__file__).resolve().parent / "data" / "airline_passengers.csv"
    df = pd.read_csv(path, parse_dates=["Month"], index_col="Month")
    df.index = pd.DatetimeIndex(df.index, freq="MS", name="Month")
    df["Passengers"] = df["Passengers"].astype(np.float64)
    return df
