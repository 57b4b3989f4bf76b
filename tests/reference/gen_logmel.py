#!/usr/bin/python3
"""gen_logmel.py — golden data for engine/logmel.c, computed independently in float64 with numpy.

Run with Debian's interpreter (the python3 first on PATH has no numpy):
    /usr/bin/python3 tests/reference/gen_logmel.py
Writes, little-endian float32, no header:
    tests/golden/logmel_signal.f32     [S]      the input: chirp + two tones + seeded noise, an exact-zero stretch
    tests/golden/logmel_expected.f32   [T, 80]  log-mel of the input by the definition in engine/logmel.h
The definition is restated here from the header, not from the C code: periodic Hann of 400 samples, hop 160, FFT 512,
power spectrum, 80 HTK-mel triangles from 0 to 8000 Hz (peak 1, no normalisation), natural log with floor 1e-10.
"""
import os
import numpy as np

RATE, NFFT, WIN, HOP, NMELS, FMIN, FMAX, FLOOR = 16000, 512, 400, 160, 80, 0.0, 8000.0, 1e-10
S = 12345  # not a whole number of hops: the tail after the last frame is dropped


def signal():
    t = np.arange(S) / RATE
    rng = np.random.default_rng(20240610)
    f0, f1, dur = 100.0, 7000.0, S / RATE
    chirp = 0.3 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * dur) * t * t))
    tones = 0.2 * np.sin(2 * np.pi * 440.0 * t) + 0.1 * np.sin(2 * np.pi * 3100.0 * t + 0.5)
    x = chirp + tones + 0.05 * rng.standard_normal(S)
    x[6000:7000] = 0.0  # frames wholly inside hit the floor exactly
    return x.astype(np.float32)


def mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


def imel(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def filterbank():
    pts = imel(np.linspace(mel(FMIN), mel(FMAX), NMELS + 2))
    f = np.arange(NFFT // 2 + 1) * RATE / NFFT
    F = np.zeros((NMELS, NFFT // 2 + 1))
    for m in range(NMELS):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        inside = (f > lo) & (f < hi)
        up = (f - lo) / (c - lo)
        down = (hi - f) / (hi - c)
        F[m] = np.where(inside, np.minimum(up, down), 0.0)
    return F


def logmel(x):
    x = x.astype(np.float64)
    T = 0 if len(x) < WIN else (len(x) - WIN) // HOP + 1
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN) / WIN)
    frames = np.stack([x[t * HOP:t * HOP + WIN] * w for t in range(T)])
    P = np.abs(np.fft.rfft(frames, n=NFFT, axis=1)) ** 2
    E = P @ filterbank().T
    return np.log(np.maximum(E, FLOOR))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "..", "golden")
    x = signal()
    y = logmel(x).astype(np.float32)
    x.astype("<f4").tofile(os.path.join(out, "logmel_signal.f32"))
    y.astype("<f4").tofile(os.path.join(out, "logmel_expected.f32"))
    print(f"logmel golden: {S} samples -> {y.shape[0]} frames x {y.shape[1]} mels, range [{y.min():.3f}, {y.max():.3f}]")


if __name__ == "__main__":
    main()
