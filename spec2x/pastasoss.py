"""NIRISS SOSS trace geometry from a PASTASOSS reference: y(x) and lambda(x) of each spectral order at the
exposure's pupil-wheel position (PWCPOS), computed as jwst 3.0.0's ``soss_extract.pastasoss`` does.

The reference holds, per order, the trace (x, y) at the commanded position ``pwcpos_cmd`` with its pivot,
and a 2-D polynomial lambda(x, PWCPOS offset) whose coefficients run in graded-lexicographic order
(C00, C10, C01, C20, C11, C02, ...) on min-max scaled inputs.  For an exposure the trace is rotated about
the pivot by ``PWCPOS - pwcpos_cmd`` degrees, resampled back onto the reference x, cut at y <= 255, given
wavelengths, then extended linearly onto the reference wavelength grid (``wavemap_wlmin..wlmax``); the
per-column trace is a cubic spline of that, over columns ``0 .. cutoff-1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline
from stdatamodels.jwst import datamodels

from spec2x.errors import InputError, RefError

ORDERS_NEEDED = (1, 2)
SUBSTRIP96_SHIFT = 10.0  # rows between the SUBSTRIP256 and SUBSTRIP96 trace positions
MAX_TRACE_ROW = 255.0


@dataclass(frozen=True)
class OrderModel:
    """One order of the PASTASOSS reference."""

    order: int
    trace: np.ndarray          # (n, 2) x, y at pwcpos_cmd
    pivot: tuple
    cutoff: int
    coefficients: np.ndarray   # graded-lexicographic 2-D polynomial
    extents: np.ndarray        # [[x_min, offset_min], [x_max, offset_max]]
    throughput_wave: np.ndarray
    throughput: np.ndarray


@dataclass(frozen=True)
class Pastasoss:
    path: str
    orders: dict               # order -> OrderModel
    pwcpos_cmd: float
    pwcpos_bounds: tuple
    wave_grid: np.ndarray
    separation_cutoff: tuple


@dataclass(frozen=True)
class Trace:
    """An order's trace on the detector columns 0 .. cutoff-1 (subarray rows) and its wavelengths."""

    order: int
    x: np.ndarray
    y: np.ndarray
    wavelength: np.ndarray


def read_pastasoss(path: str) -> Pastasoss:
    """The PASTASOSS reference; orders 1 and 2 must be defined (order 3 is optional)."""
    try:
        model = datamodels.PastasossModel(path)
    except (OSError, ValueError) as exc:
        raise RefError("extract_1d", "pastasoss", f"{path}: not a PASTASOSS file ({exc})") from None
    with model:
        traces = {int(t.spectral_order): t for t in model.traces}
        missing = [o for o in ORDERS_NEEDED if o not in traces]
        if missing:
            raise RefError("extract_1d", "pastasoss", f"{path}: traces[].spectral_order has no order "
                           f"{missing[0]} (orders defined: {sorted(traces)})")
        wavecal = {int(w.spectral_order): w for w in model.wavecal_models}
        thru = {int(t.spectral_order): t for t in model.throughputs}
        orders = {}
        for o, t in traces.items():
            if o not in wavecal:
                raise RefError("extract_1d", "pastasoss", f"{path}: wavecal_models[] has no spectral_order {o}")
            w = wavecal[o]
            th = thru.get(o)
            orders[o] = OrderModel(
                order=o, trace=np.array(t.trace, np.float64), pivot=(float(t.pivot_x), float(t.pivot_y)),
                cutoff=int(t.cutoff), coefficients=np.array(w.coefficients, np.float64),
                extents=np.array(w.scale_extents, np.float64),
                throughput_wave=None if th is None else np.array(th.wavelength, np.float64),
                throughput=None if th is None else np.array(th.throughput, np.float64))
        meta = model.meta
        bounds = meta.pwcpos_bounds
        grid = np.linspace(meta.wavemap_wlmin, meta.wavemap_wlmax, meta.wavemap_nwl)
        return Pastasoss(path=str(path), orders=orders, pwcpos_cmd=float(meta.pwcpos_cmd),
                         pwcpos_bounds=tuple(bounds) if bounds is not None else (),
                         wave_grid=grid, separation_cutoff=tuple(meta.order2_separation_cutoff or ()))


def check_pwcpos(ref: Pastasoss, pwcpos, source: str) -> float:
    """PWCPOS as a float, inside the reference's ``pwcpos_bounds``."""
    if pwcpos is None:
        raise InputError(source, "keyword PWCPOS (pupil wheel position) is missing; NIRISS SOSS traces need it")
    pwcpos = float(pwcpos)
    if len(ref.pwcpos_bounds) != 2 or not ref.pwcpos_bounds[0] <= pwcpos <= ref.pwcpos_bounds[1]:
        raise RefError("extract_1d", "pastasoss", f"{ref.path}: PWCPOS={pwcpos} is outside meta.pwcpos_bounds "
                       f"{list(ref.pwcpos_bounds)}")
    return pwcpos


def polynomial_2d(coefficients: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """sum c_k x^i y^j with k running over total degree d = i + j, then j = 0 .. d."""
    degree = int(np.sqrt(2 * len(coefficients))) - 1
    out = np.zeros_like(np.asarray(x, np.float64))
    k = 0
    for d in range(degree + 1):
        for j in range(d + 1):
            if k < len(coefficients):
                out = out + coefficients[k] * x ** (d - j) * y ** j
            k += 1
    return out


def wavelengths(m: OrderModel, x: np.ndarray, offset: float) -> np.ndarray:
    """lambda (micron) at columns ``x`` for a pupil-wheel offset from the commanded position."""
    (x0, o0), (x1, o1) = m.extents
    return polynomial_2d(m.coefficients, (x - x0) / (x1 - x0), (np.full_like(x, offset) - o0) / (o1 - o0))


def _linear_extrapolating(xp: np.ndarray, fp: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation of (xp, fp) at x, extended linearly past both ends."""
    order = np.argsort(xp, kind="stable")
    xp, fp = xp[order], fp[order]
    out = np.interp(x, xp, fp)
    lo, hi = x < xp[0], x > xp[-1]
    out[lo] = fp[0] + (x[lo] - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
    out[hi] = fp[-2] + (x[hi] - xp[-2]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return out


def rotated_trace(m: OrderModel, angle: float, subarray: str):
    """(x, y) of the reference trace rotated by ``angle`` degrees about its pivot, at the reference x."""
    x, y = m.trace[:, 0].copy(), m.trace[:, 1].copy()
    if subarray == "SUBSTRIP96":
        y -= SUBSTRIP96_SHIFT
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    dx, dy = x - m.pivot[0], y - m.pivot[1]
    x_new = c * dx - s * dy + m.pivot[0]
    y_new = s * dx + c * dy + m.pivot[1]
    y_out = _linear_extrapolating(x_new, y_new, x)
    keep = y_out <= MAX_TRACE_ROW
    return x[keep], y_out[keep]


def _extend_to_grid(grid: np.ndarray, wave: np.ndarray, q: np.ndarray) -> np.ndarray:
    """q(wave) resampled on ``grid``, extended linearly beyond the data with the end slopes."""
    order = np.argsort(wave)
    w, q = wave[order], q[order]
    right, left = grid > w[-1], grid < w[0]
    q_right = q[-1] + (grid[right] - w[-1]) * (q[-1] - q[-2]) / (w[-1] - w[-2])
    q_left = q[0] + (grid[left] - w[0]) * (q[1] - q[0]) / (w[1] - w[0])
    return np.interp(grid, np.concatenate((grid[left], w, grid[right])), np.concatenate((q_left, q, q_right)))


def spectrace(ref: Pastasoss, order: int, pwcpos: float, subarray: str = "SUBSTRIP256"):
    """(x, y, lambda) of the order's trace at ``pwcpos`` on the reference wavelength grid, extrapolated
    linearly at both ends, computed with the same floating-point operations as jwst (a 2x2 matrix product
    for the rotation, scipy's linear ``interp1d``, astropy's ``Polynomial2D``): ATOCA's unregularised flux
    estimate amplifies differences in the last bit, so its inputs must be jwst's to the bit."""
    from astropy.modeling.models import Polynomial2D
    from scipy.interpolate import interp1d

    m = ref.orders[order]
    x, y = m.trace[:, 0].copy(), m.trace[:, 1].copy()
    if subarray == "SUBSTRIP96":
        y -= SUBSTRIP96_SHIFT
    centre = np.atleast_2d(m.pivot).T
    rad = np.radians(pwcpos - ref.pwcpos_cmd)
    c, s = np.cos(rad), np.sin(rad)
    x_rot, y_rot = np.array([[c, -s], [s, c]]) @ (np.vstack([x, y]) - centre) + centre
    y_new = interp1d(x_rot, y_rot, fill_value="extrapolate")(x)
    keep = y_new <= MAX_TRACE_ROW
    x, y_new = x[keep], y_new[keep]
    degree = int(np.sqrt(2 * len(m.coefficients))) - 1
    poly = Polynomial2D(degree=degree)
    for name in poly.param_names:
        i, j = (int(n) for n in name.strip("c").split("_"))
        setattr(poly, name, m.coefficients[(i + j) * (i + j + 1) // 2 + j])
    (x0, o0), (x1, o1) = m.extents
    offset = np.ones_like(x) * (pwcpos - ref.pwcpos_cmd)
    wave = poly((x - x0) / (x1 - x0), (offset - o0) / (o1 - o0))
    grid = ref.wave_grid
    return _extrapolate(grid, wave, x), _extrapolate(grid, wave, y_new), grid


def _extrapolate(grid, wave, q):
    """q(wave) on ``grid``, continued beyond the data with its end slopes."""
    order = np.argsort(wave)
    q, w = q[order], wave[order]
    slope_hi = (q[-1] - q[-2]) / (w[-1] - w[-2])
    hi = np.where(grid > w[-1])[0]
    slope_lo = (q[1] - q[0]) / (w[1] - w[0])
    lo = np.where(grid < w[0])[0]
    q_hi = q[-1] + (grid[hi] - w[-1]) * slope_hi
    q_lo = q[0] + (grid[lo] - w[0]) * slope_lo
    return np.interp(grid, np.concatenate((grid[lo], w, grid[hi])), np.concatenate((q_lo, q, q_hi)))


def exact_trace(ref: Pastasoss, order: int, pwcpos: float, subarray: str = "SUBSTRIP256") -> Trace:
    """``trace`` from the jwst-identical ``spectrace`` (ATOCA's inputs)."""
    xs, ys, ws = spectrace(ref, order, pwcpos, subarray)
    if xs[0] - xs[1] > 0:
        xs, ys, ws = xs[::-1], ys[::-1], ws[::-1]
    cols = np.arange(ref.orders[order].cutoff)
    return Trace(order, cols, CubicSpline(xs, ys)(cols), CubicSpline(xs, ws)(cols))


def wavemap(ref: Pastasoss, order: int, pwcpos: float, shape: tuple, subarray: str = "SUBSTRIP256") -> np.ndarray:
    """lambda per pixel of the subarray for one order, as jwst's ``get_soss_wavemaps`` gives it (no tilt):
    the trace's lambda(x), piecewise linear in x, the same on every row, NaN beyond the trace's x range.

    jwst solves x(lambda) iteratively; with no tilt the first iteration leaves a shift of a few ulp,
    which is replayed here so the maps agree to the bit."""
    xs, _, ws = spectrace(ref, order, pwcpos, subarray)
    cols = np.arange(shape[1], dtype=np.float64)
    rising_x, rising_w = xs[::-1], ws[::-1]
    shift = 0.0
    for _ in range(5):
        lam = np.interp(cols - shift, rising_x, rising_w)
        moved = np.interp(lam, ws, xs) - cols
        shift = shift + moved
        if np.all(np.abs(moved) < 1e-2):
            break
    row = np.interp(cols - shift, rising_x, rising_w, left=np.nan, right=np.nan)
    return np.broadcast_to(row, shape).copy()


def trace(ref: Pastasoss, order: int, pwcpos: float, subarray: str = "SUBSTRIP256") -> Trace:
    """The order's trace y(x) and lambda(x) on columns 0 .. cutoff-1 at ``pwcpos``."""
    m = ref.orders[order]
    offset = pwcpos - ref.pwcpos_cmd
    x, y = rotated_trace(m, offset, subarray)
    wave = wavelengths(m, x, offset)
    xs = _extend_to_grid(ref.wave_grid, wave, x)
    ys = _extend_to_grid(ref.wave_grid, wave, y)
    ws = ref.wave_grid
    if xs[0] - xs[1] > 0:
        xs, ys, ws = xs[::-1], ys[::-1], ws[::-1]
    cols = np.arange(m.cutoff)
    return Trace(order, cols, CubicSpline(xs, ys)(cols), CubicSpline(xs, ws)(cols))
