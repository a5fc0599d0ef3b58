#!/usr/bin/env python3
"""Generate the TA-Lib reference data used by the unit tests of `src/indicators/`.

Rerun (only when the indicator set or the input changes; the output is committed):

    python3 tests/data/talib/generate.py

from the repository root (or anywhere: paths are resolved relative to this file).
Needs numpy and the Python `TA-Lib` wrapper. Generated with TA-Lib Python wrapper
0.8.2 over the TA-Lib C library reported by `talib.__ta_version__` (recorded in the
JSON as `talib_version` / `talib_c_version`); every function is called with the
C library defaults (unstable period 0, default compatibility, SMA where a MA type
is asked for).

Input: the first 600 candles of the real Binance BTCUSDT 1m file
`data/binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv` (falls back to the
shared copy under /work/shared when the repository copy is absent).

Output: `reference.json` next to this script:
  candles:    open_time (Unix s), open, high, low, close, volume arrays
  indicators: list of {kind, params, outputs: {name: [value | null]}} where null is
              TA-Lib's NaN (warm-up). Values are rounded to 12 significant digits,
              far finer than the 1e-8 tolerance the tests use.
  edge_cases: list of {name, candles, indicators} over small synthetic series built to
              hit TA-Lib's degenerate-case guards ("degenerate": flat from the first
              candle, a machine-flat 0.3 vs 0.1+0.2 stretch, zero and tiny volume, zero
              prices; "tiny_prices": prices around 1e-15), so the tests pin what TA-Lib
              answers where a naive formula would divide by zero.
"""

import csv
import json
import math
import os
from datetime import datetime

import numpy as np
import talib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
NAME = "binance_spot_BTCUSDT_1m_fullcols_2025-10-29_2025-11-01.csv"
CANDIDATES = [
    os.path.join(REPO, "data", NAME),
    os.path.join("/work/shared/data/binance_klines_1m", NAME),
]
N_CANDLES = 600


def load():
    path = next((p for p in CANDIDATES if os.path.exists(p)), None)
    if path is None:
        raise SystemExit(f"input not found; looked at {CANDIDATES}")
    cols = {k: [] for k in ("open_time", "open", "high", "low", "close", "volume")}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        next(reader)  # header
        for row in reader:
            if len(cols["close"]) == N_CANDLES:
                break
            cols["open_time"].append(int(datetime.fromisoformat(row[0]).timestamp()))
            for i, k in enumerate(("open", "high", "low", "close", "volume"), start=1):
                cols[k].append(float(row[i]))
    if len(cols["close"]) != N_CANDLES:
        raise SystemExit(f"{path}: only {len(cols['close'])} candles")
    return os.path.basename(path), cols


def clean(arr):
    out = []
    for x in arr:
        x = float(x)
        out.append(None if math.isnan(x) else float(f"{x:.12g}"))
    return out


def edge_series():
    """Deterministic synthetic candles for the degenerate cases (see module doc)."""
    rng = np.random.default_rng(7)
    o, h, l, c, v = [], [], [], [], []

    def bar(op, hi, lo, cl, vol):
        o.append(op); h.append(hi); l.append(lo); c.append(cl); v.append(vol)

    for _ in range(20):  # flat from the very first candle: no gain, loss, range or flow
        bar(100.0, 100.0, 100.0, 100.0, 1.0)
    p = 100.0
    for _ in range(20):  # ordinary moves
        q = round(p + rng.normal(0, 0.5), 2)
        bar(p, max(p, q) + 0.1, min(p, q) - 0.1, q, round(rng.uniform(0.5, 3), 3))
        p = q
    for i in range(20):  # flat but for one-ulp noise: 0.3 vs 0.30000000000000004
        x = 0.3 if i % 2 else 0.1 + 0.2
        bar(x, x, x, x, 2.0)
    p = 0.3
    for vol in [0.0] * 20 + [1e-9] * 20:  # zero, then tiny, volume
        q = round(p + rng.normal(0, 0.01), 4)
        bar(p, max(p, q), min(p, q), q, vol)
        p = q
    for _ in range(3):  # zero prices (ROC's zero base)
        bar(0.0, 0.0, 0.0, 0.0, 1.0)
    p = 1.0
    for _ in range(20):
        q = round(p + rng.normal(0, 0.01), 4)
        bar(p, max(p, q), min(p, q), q, 1.0)
        p = q
    return columns(o, h, l, c, v)


def tiny_series():
    """Prices around 1e-15: every sum sits below any fixed epsilon, so only guards
    scaled to the data keep real readings. A series of its own because a running sum
    that once held ~1.0 values keeps ~1e-16 of rounding residue, which at this scale
    would make TA-Lib's own MFI noise rather than a reference."""
    rng = np.random.default_rng(11)
    o, h, l, c, v = [], [], [], [], []
    p = 1e-15
    for _ in range(60):
        q = p * (1 + rng.normal(0, 0.05))
        o.append(p); h.append(max(p, q)); l.append(min(p, q)); c.append(q); v.append(1.0)
        p = q
    return columns(o, h, l, c, v)


def columns(o, h, l, c, v):
    base = 1_700_000_000 - 1_700_000_000 % 60
    return {
        "open_time": [base + 60 * i for i in range(len(c))],
        "open": o, "high": h, "low": l, "close": c, "volume": v,
    }


def compute(c):
    """Every reference indicator over candle columns `c`."""
    o, h, l, cl, v = (np.array(c[k], dtype=float) for k in ("open", "high", "low", "close", "volume"))
    ind = []

    def add(kind, params, **outputs):
        ind.append({"kind": kind, "params": params, "outputs": {k: clean(a) for k, a in outputs.items()}})

    for n in (14, 7, 2):
        add("rsi", [n], value=talib.RSI(cl, timeperiod=n))
    for n in (9, 21, 2):
        add("ema", [n], value=talib.EMA(cl, timeperiod=n))
    for n in (20, 7, 2):
        add("sma", [n], value=talib.SMA(cl, timeperiod=n))
    for f, s, sig in ((12, 26, 9), (5, 13, 4), (2, 3, 1)):
        m, sg, hi = talib.MACD(cl, fastperiod=f, slowperiod=s, signalperiod=sig)
        add("macd", [f, s, sig], macd=m, signal=sg, hist=hi)
    for n, k in ((20, 2.0), (10, 1.5), (5, 1.0)):
        up, mid, lo = talib.BBANDS(cl, timeperiod=n, nbdevup=k, nbdevdn=k, matype=0)
        add("bbands", [n, k], upper=up, middle=mid, lower=lo)
    for n in (14, 5, 1):
        add("atr", [n], value=talib.ATR(h, l, cl, timeperiod=n))
    for n in (10, 20, 2):
        add("stddev", [n], value=talib.STDDEV(cl, timeperiod=n, nbdev=1))
    for n in (10, 3, 1):
        add("roc", [n], value=talib.ROC(cl, timeperiod=n))
    for k, sk, d in ((14, 3, 3), (5, 3, 2), (1, 1, 1)):
        sk_out, d_out = talib.STOCH(h, l, cl, fastk_period=k, slowk_period=sk, slowk_matype=0,
                                    slowd_period=d, slowd_matype=0)
        add("stoch", [k, sk, d], k=sk_out, d=d_out)
    add("obv", [], value=talib.OBV(cl, v))
    for n in (14, 7, 2):
        add("mfi", [n], value=talib.MFI(h, l, cl, v, timeperiod=n))
    return ind


def main():
    source, c = load()
    edge = [("degenerate", edge_series()), ("tiny_prices", tiny_series())]
    ta_c = talib.__ta_version__
    doc = {
        "talib_version": talib.__version__,
        "talib_c_version": ta_c.decode() if isinstance(ta_c, bytes) else str(ta_c),
        "source": source,
        "candles": {k: c[k] for k in ("open_time", "open", "high", "low", "close", "volume")},
        "indicators": compute(c),
        "edge_cases": [{"name": n, "candles": e, "indicators": compute(e)} for n, e in edge],
    }
    out = os.path.join(HERE, "reference.json")
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {out}: {len(doc['indicators'])} series over {N_CANDLES} candles, "
          f"edge cases: {[(n, len(e['close'])) for n, e in edge]}")


if __name__ == "__main__":
    main()
