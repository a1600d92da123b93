"""A fused C kernel for the LTC's semi-implicit unfolds, with its hand-written backward pass.

Where the time goes (profiled on 32 units, batch 64, T=100, 6 unfolds, one thread): a
training step of the straightforward PyTorch loop (and of ncps) is ~25 elementwise passes
over a ``[batch, units, units]`` tensor per unfold, 600 unfolds forward and backward —
small ops whose cost is dispatch and memory traffic, not arithmetic. This kernel does
the same arithmetic in two C loops (forward over all steps and unfolds, backward in
reverse), keeping the per-sample working set (four ``units × units`` matrices) in L1
and calling glibc's vectorised ``expf``. The backward pass recomputes the synapse
activations instead of storing them (600 × 64 × 32 × 32 floats would be 157 MB).

It is compiled once per machine with the system C compiler (``cc``/``gcc``, about a
second) into ``$CTNN_CACHE_DIR`` (default ``~/.cache/ctnn-models``) and loaded with
ctypes: no Python headers, no torch headers. Where no compiler is found, or with
``CTNN_NATIVE=0``, :func:`available` is False and the LTC falls back to the eager
PyTorch loop, which computes the same thing.

The arithmetic is that of :func:`~ctnn.models._solvers.semi_implicit_euler` with the
conductances of :class:`~ctnn.models.LTCCell`; only the order of floating-point
additions differs (float32 results agree to ~1e-6; the tests compare float64 results
to 1e-12 and check the gradients with ``torch.autograd.gradcheck``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch
from torch import Tensor

_BODY = r"""
void SFX(ltc_fwd)(int64_t B, int64_t T, int64_t U, int64_t N, const REAL* cnum, const REAL* cden,
                  const REAL* cmt, const REAL* v0, const REAL* sigma, const REAL* mu, const REAL* we,
                  const REAL* wd, double eps_, REAL* vs) {
  const REAL eps = (REAL)eps_;
  REAL* sm = (REAL*)malloc(sizeof(REAL) * N * N);
  REAL* s = (REAL*)malloc(sizeof(REAL) * N * N);
  REAL* num = (REAL*)malloc(sizeof(REAL) * N);
  REAL* den = (REAL*)malloc(sizeof(REAL) * N);
  REAL* v = (REAL*)malloc(sizeof(REAL) * N);
  for (int64_t k = 0; k < N * N; ++k) sm[k] = sigma[k] * mu[k];
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < N; ++i) v[i] = v0[b * N + i];
    for (int64_t t = 0; t < T; ++t) {
      const int64_t o = (b * T + t) * N;
      const REAL *cn = cnum + o, *cd = cden + o, *cm = cmt + o;
      for (int64_t u = 0; u < U; ++u) {
        SFX(activations)(N, v, sigma, sm, s);
        for (int64_t i = 0; i < N; ++i) { num[i] = 0; den[i] = 0; }
        for (int64_t j = 0; j < N; ++j) {
          const REAL *restrict a = s + j * N, *restrict e = we + j * N, *restrict w = wd + j * N;
          REAL *restrict nu = num, *restrict de = den;
          for (int64_t i = 0; i < N; ++i) { nu[i] += a[i] * e[i]; de[i] += a[i] * w[i]; }
        }
        REAL* out = vs + ((b * T + t) * U + u) * N;
        for (int64_t i = 0; i < N; ++i) {
          v[i] = (cm[i] * v[i] + cn[i] + num[i]) / (cm[i] + cd[i] + den[i] + eps);
          out[i] = v[i];
        }
      }
    }
  }
  free(sm); free(s); free(num); free(den); free(v);
}

void SFX(ltc_bwd)(int64_t B, int64_t T, int64_t U, int64_t N, const REAL* cnum, const REAL* cden,
                  const REAL* cmt, const REAL* v0, const REAL* sigma, const REAL* mu, const REAL* we,
                  const REAL* wd, double eps_, const REAL* vs, const REAL* gvs, REAL* g_cnum,
                  REAL* g_cden, REAL* g_cmt, REAL* g_v0, REAL* g_sigma, REAL* g_mu, REAL* g_we,
                  REAL* g_wd) {
  /* Outputs must be zeroed by the caller. */
  const REAL eps = (REAL)eps_;
  REAL* sm = (REAL*)malloc(sizeof(REAL) * N * N);
  REAL* s = (REAL*)malloc(sizeof(REAL) * N * N);
  REAL* sdx = (REAL*)calloc(N * N, sizeof(REAL));
  REAL* sdxv = (REAL*)calloc(N * N, sizeof(REAL));
  REAL* den = (REAL*)malloc(sizeof(REAL) * N);
  REAL* g = (REAL*)malloc(sizeof(REAL) * N);
  REAL* gn = (REAL*)malloc(sizeof(REAL) * N);
  REAL* dp = (REAL*)malloc(sizeof(REAL) * N);
  REAL* dq = (REAL*)malloc(sizeof(REAL) * N);
  for (int64_t k = 0; k < N * N; ++k) sm[k] = sigma[k] * mu[k];
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < N; ++i) g[i] = 0;
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t o = (b * T + t) * N;
      const REAL *cd = cden + o, *cm = cmt + o;
      for (int64_t i = 0; i < N; ++i) g[i] += gvs[o + i];
      for (int64_t u = U - 1; u >= 0; --u) {
        const REAL* vin = u > 0 ? vs + ((b * T + t) * U + u - 1) * N
                                : (t > 0 ? vs + ((b * T + t - 1) * U + U - 1) * N : v0 + b * N);
        const REAL* vout = vs + ((b * T + t) * U + u) * N;
        SFX(activations)(N, vin, sigma, sm, s);
        for (int64_t i = 0; i < N; ++i) den[i] = 0;
        for (int64_t j = 0; j < N; ++j) {
          const REAL *restrict a = s + j * N, *restrict w = wd + j * N;
          REAL* restrict de = den;
          for (int64_t i = 0; i < N; ++i) de[i] += a[i] * w[i];
        }
        for (int64_t i = 0; i < N; ++i) {
          const REAL q = cm[i] + cd[i] + den[i] + eps;
          const REAL p = g[i] / q;
          dp[i] = p;
          dq[i] = -p * vout[i];
          g_cnum[o + i] += p;
          g_cden[o + i] += dq[i];
          g_cmt[o + i] += p * vin[i] + dq[i];
          gn[i] = cm[i] * p;
        }
        for (int64_t j = 0; j < N; ++j) {
          const REAL vj = vin[j];
          const REAL *restrict a = s + j * N, *restrict e = we + j * N, *restrict w = wd + j * N;
          const REAL* restrict sg = sigma + j * N;
          REAL *restrict ge = g_we + j * N, *restrict gw = g_wd + j * N;
          REAL *restrict x1 = sdx + j * N, *restrict xv = sdxv + j * N;
          REAL acc = 0;
          for (int64_t i = 0; i < N; ++i) {
            const REAL ai = a[i];
            const REAL dx = (dp[i] * e[i] + dq[i] * w[i]) * (ai - ai * ai);
            ge[i] += ai * dp[i];
            gw[i] += ai * dq[i];
            x1[i] += dx;
            xv[i] += dx * vj;
            acc += dx * sg[i];
          }
          gn[j] += acc;
        }
        REAL* tmp = g; g = gn; gn = tmp;
      }
    }
    for (int64_t i = 0; i < N; ++i) g_v0[b * N + i] = g[i];
  }
  for (int64_t k = 0; k < N * N; ++k) {
    g_sigma[k] = sdxv[k] - mu[k] * sdx[k];
    g_mu[k] = -sigma[k] * sdx[k];
  }
  free(sm); free(s); free(sdx); free(sdxv); free(den); free(g); free(gn); free(dp); free(dq);
}
"""

_ACTIVATIONS = r"""
/* s[j, i] = sigmoid(sigma[j, i] * (v[j] - mu[j, i])); sm = sigma * mu. One vectorised exp over N*N. */
static void SFX(activations)(int64_t N, const REAL* v, const REAL* sigma, const REAL* sm, REAL* s) {
  for (int64_t j = 0; j < N; ++j) {
    const REAL vj = v[j];
    const REAL *restrict sg = sigma + j * N, *restrict sj = sm + j * N;
    REAL* restrict sr = s + j * N;
    for (int64_t i = 0; i < N; ++i) {
      REAL z = sj[i] - sg[i] * vj;  /* -x */
      sr[i] = z > XMAX ? XMAX : (z < -XMAX ? -XMAX : z);
    }
  }
  REAL* restrict sr = s;
  for (int64_t k = 0; k < N * N; ++k) sr[k] = 1 / (1 + EXP(sr[k]));
}
"""


_FAST_EXPF = r"""
/* exp for float, |x| <= 88: Cody-Waite range reduction and the Cephes expf polynomial
   (relative error ~1e-7, like expf), written so that the compiler vectorises it inline. */
static inline float fast_expf(float x) {
  const float k = floorf(x * 1.44269504088896341f + 0.5f);
  const float r = (x - k * 0.693359375f) - k * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  union { int32_t i; float f; } scale;
  scale.i = ((int32_t)k + 127) << 23;
  return y * scale.f;
}
"""


def _source() -> str:
    parts = ["#include <math.h>\n#include <stdint.h>\n#include <stdlib.h>\n", _FAST_EXPF]
    # |x| beyond XMAX changes sigmoid(x) by less than the type's resolution, and keeps exp finite.
    for real, exp, xmax, sfx in (("float", "fast_expf", "80.0f", "f32"), ("double", "exp", "700.0", "f64")):
        parts.append(
            f"#define REAL {real}\n#define EXP {exp}\n#define XMAX {xmax}\n#define SFX(n) n##_{sfx}\n"
        )
        parts.append(_ACTIVATIONS)
        parts.append(_BODY)
        parts.append("#undef REAL\n#undef EXP\n#undef XMAX\n#undef SFX\n")
    return "".join(parts)


# Compile with -ffast-math (vectorised exp, reassociated sums) but link without it: linking
# a shared object with -ffast-math (GCC < 13) adds crtfastmath.o, which would switch the
# whole process to flush-to-zero when the library loads.
_FLAGS = ["-O3", "-march=native", "-ffast-math", "-fPIC"]
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_error: str | None = None


def _cpu_key() -> str:
    try:
        flags = next(
            (ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), ""
        )
    except OSError:
        flags = ""
    return f"{platform.machine()}|{platform.processor()}|{flags}"


def _cache_dir() -> Path:
    root = os.environ.get("CTNN_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ctnn-models"
    )
    return Path(root)


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _build() -> ctypes.CDLL:
    src = _source()
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc, gcc or clang) on PATH")
    key = hashlib.sha256("\0".join([src, cc, *_FLAGS, _cpu_key()]).encode()).hexdigest()[:16]
    out = _cache_dir() / f"ltc_kernel_{key}.so"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            c_file, o_file = Path(tmp) / "ltc_kernel.c", Path(tmp) / "ltc_kernel.o"
            so_file = Path(tmp) / "ltc_kernel.so"
            c_file.write_text(src)
            for cmd in (
                [cc, *_FLAGS, "-c", str(c_file), "-o", str(o_file)],
                [cc, "-shared", str(o_file), "-o", str(so_file), "-lm"],
            ):
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"{cc} failed: {proc.stderr.strip()[:2000]}")
            os.replace(so_file, out)  # atomic: concurrent builders never see half a file
    lib = ctypes.CDLL(str(out))
    i64, ptr, dbl = ctypes.c_int64, ctypes.c_void_p, ctypes.c_double
    for sfx in ("f32", "f64"):
        getattr(lib, f"ltc_fwd_{sfx}").argtypes = [i64] * 4 + [ptr] * 8 + [dbl, ptr]
        getattr(lib, f"ltc_bwd_{sfx}").argtypes = [i64] * 4 + [ptr] * 8 + [dbl] + [ptr] * 10
    return lib


def load() -> ctypes.CDLL | None:
    """The compiled kernel library, building it on first use; None if it cannot be had."""
    global _lib, _error
    if os.environ.get("CTNN_NATIVE", "1") == "0":
        return None
    with _lock:
        if _lib is None and _error is None:
            try:
                _lib = _build()
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                _error = str(exc)
    return _lib


def available() -> bool:
    """Whether the fused C kernel can be used (compiled, or compilable, on this machine)."""
    return load() is not None


def unavailable_reason() -> str | None:
    """Why :func:`available` is False (None when it is True)."""
    if os.environ.get("CTNN_NATIVE", "1") == "0":
        return "disabled by CTNN_NATIVE=0"
    load()
    return _error


def _p(t: Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


class FusedSemiImplicit(torch.autograd.Function):
    """All steps and unfolds of the LTC's fused semi-implicit solver, in C.

    Inputs (one dtype, float32 or float64, CPU): ``cnum, cden, cmt [B, T, N]`` — the
    constant numerator terms (leak and sensory synapses), constant denominator terms and
    ``cm / dt`` per step; ``v0 [B, N]``; ``sigma, mu [N, N]``; ``we = w·erev`` and
    ``wd = w [N, N]`` (positive, masked); ``eps``; ``unfolds``. Output: the state after
    each step ``[B, T, N]``. Per unfold, for neuron i::

        s_ji = sigmoid(sigma_ji · (v_j − mu_ji))
        v_i ← (cmt_i·v_i + cnum_i + Σ_j s_ji·we_ji) / (cmt_i + cden_i + Σ_j s_ji·wd_ji + eps)
    """

    @staticmethod
    def forward(ctx, cnum, cden, cmt, v0, sigma, mu, we, wd, eps, unfolds):  # type: ignore[override]
        lib = load()
        assert lib is not None
        B, T, N = cnum.shape
        args = [t.detach().contiguous() for t in (cnum, cden, cmt, v0, sigma, mu, we, wd)]
        vs = args[0].new_empty(B, T, unfolds, N)
        sfx = "f64" if cnum.dtype == torch.float64 else "f32"
        getattr(lib, f"ltc_fwd_{sfx}")(B, T, unfolds, N, *map(_p, args), float(eps), _p(vs))
        ctx.save_for_backward(*args, vs)
        ctx.eps, ctx.unfolds = float(eps), unfolds
        return vs[:, :, -1]

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        lib = load()
        assert lib is not None
        *args, vs = ctx.saved_tensors
        cnum, v0, sigma = args[0], args[3], args[4]
        B, T, N = cnum.shape
        g_cnum, g_cden, g_cmt = (torch.zeros_like(cnum) for _ in range(3))
        g_v0 = torch.zeros_like(v0)
        g_sigma, g_mu, g_we, g_wd = (torch.zeros_like(sigma) for _ in range(4))
        grad = grad.contiguous()
        sfx = "f64" if cnum.dtype == torch.float64 else "f32"
        outs = (g_cnum, g_cden, g_cmt, g_v0, g_sigma, g_mu, g_we, g_wd)
        getattr(lib, f"ltc_bwd_{sfx}")(
            B, T, ctx.unfolds, N, *map(_p, args), ctx.eps, _p(vs), _p(grad), *map(_p, outs)
        )
        return (*outs, None, None)
