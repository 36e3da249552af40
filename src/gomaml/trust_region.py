"""Ball-constrained least squares  min_{‖v‖ ≤ R} ‖A v − c‖₂  (theory.md §6's representation term).

Two solvers share one small-problem core:
* exact: an SVD of a dense A, then a secular equation on the damping λ for each R;
* matrix-free: one Golub–Kahan bidiagonalisation of A from c (full reorthogonalisation), whose
  Krylov space serves every λ and R (shift invariance); the projected problem is solved by
  the exact core. Reported residuals are always ‖A v − c‖ at a feasible v.
"""
import numpy as np
from scipy import optimize

from gomaml._memory import check_fits


class SVDCore:
    """min_{‖y‖≤R} ‖B y − f‖ for a small dense B, for any R, from one SVD of B."""

    def __init__(self, B, f, rank_scale=None):
        """rank_scale: singular values below rank_scale·eps·σ_max are dropped (default
        max(B.shape); the matrix-free solver passes the full operator's max(rows, d), so its
        A⁺c is the dense pseudo-inverse's at the same cutoff)."""
        if min(B.shape) == 0:                       # nothing to fit with
            U, s, Vt = np.zeros((B.shape[0], 0)), np.zeros(0), np.zeros((0, B.shape[1]))
        else:
            U, s, Vt = np.linalg.svd(B, full_matrices=False)
        scale = max(B.shape) if rank_scale is None else rank_scale
        tol = scale * np.finfo(float).eps * (s[0] if s.size else 0.0)
        keep = s > tol
        self.s, self.Vt = s[keep], Vt[keep]
        self.beta = U[:, keep].T @ f
        # part of f outside the range of B, never representable: computed as ‖f − Uβ‖², not
        # ‖f‖² − ‖β‖², whose cancellation leaves ~eps·‖f‖² (a false floor of √eps·‖f‖)
        outside = f - U[:, keep] @ self.beta
        self.outside2 = float(outside @ outside)
        self.y_free = self.Vt.T @ (self.beta / self.s) if self.s.size else np.zeros(B.shape[1])
        self.free_norm = float(np.linalg.norm(self.beta / self.s)) if self.s.size else 0.0
        # the secular equations below run on s/σ, β/μ (σ = max s, μ = max |β|): every sum
        # is then of terms ≤ 1/(rank tolerance)², with no overflow for any scale of B or f;
        # y = (μ/σ)·ỹ(λ/σ²), the residual ρ = μ·ρ̃(λ/σ²)
        mu = float(np.max(np.abs(self.beta))) if self.s.size else 0.0
        self._sigma = float(self.s[0]) if self.s.size else 1.0
        self._mu = mu if mu > 0 else 1.0
        self._st = self.s / self._sigma
        self._bt = self.beta / self._mu
        self._o2t = float(np.sum((outside / self._mu) ** 2))

    def _scaled(self, lamt):
        """(ỹ coefficients, q̃ = s̃² + λ̃) at the scaled damping λ̃ = λ/σ²."""
        q = self._st ** 2 + lamt
        return self._st * self._bt / q, q

    def _lam(self, R):
        """λ̃ > 0 (the scaled damping) with ‖y(λ)‖ = R (0 < R < free_norm), by Newton's method
        on the secular equation φ(λ̃) = 1/‖ỹ(λ̃)‖ − 1/R̃, R̃ = Rσ/μ. φ is increasing and concave
        (Moré & Sorensen 1983), so from a point with φ ≤ 0 the iterates increase monotonically
        to the root without overshooting it; each costs a few sums over the singular values.
        The start λ̃₀ = max(0, ‖s̃β̃‖/R̃ − 1) has φ ≤ 0 (s̃ ≤ 1: ‖ỹ(λ̃₀)‖ ≥ ‖s̃β̃‖/(1 + λ̃₀) = R̃)
        and is the root's asymptote for small R."""
        Rt = R / (self._mu / self._sigma)
        lamt = max(0.0, float(np.linalg.norm(self._st * self._bt)) / Rt - 1.0)
        for _ in range(200):
            yt, q = self._scaled(lamt)
            y2 = yt * yt
            n2 = float(np.sum(y2))
            n = np.sqrt(n2)
            if not n > 0:
                break
            phi = 1.0 / n - 1.0 / Rt
            slope = float(np.sum(y2 / q))                  # φ′·‖ỹ‖³
            if phi >= 0.0 or not slope > 0:
                break
            step = -phi * n2 * n / slope                    # −φ/φ′
            if not step > 4 * np.finfo(float).eps * lamt:
                break
            lamt += step
        return lamt

    def solve(self, R):
        """(y, lam): the minimiser (on the ball's surface when the free one lies outside)."""
        if R >= self.free_norm:
            return self.y_free, 0.0
        if R <= 0 or not self.s.size:
            return np.zeros(self.Vt.shape[1]), np.inf
        lamt = self._lam(R)
        y = (self._mu / self._sigma) * (self.Vt.T @ self._scaled(lamt)[0])
        n = np.linalg.norm(y)
        if n > R:                      # rounding: scale into the ball
            y *= R / n
        return y, lamt * self._sigma ** 2

    def residual(self, R):
        """min over the ball of ‖B y − f‖, from the SVD (the model value, not re-evaluated)."""
        y, _ = self.solve(R)
        r_in = self.s * (self.Vt @ y) - self.beta
        return float(np.sqrt(r_in @ r_in + self.outside2))

    def best_radius(self, eps, w_norm):
        """R ≥ 0 minimising R·eps + w_norm·residual(R) (convex in R; residual constant beyond
        free_norm), through λ: on the path y(λ), dρ/dR = −λR/ρ for the model residual ρ, so
        an interior minimiser solves h(λ) = λR(λ)/ρ(λ) = eps/w_norm, h increasing; in the
        scaled variables h = σ·λ̃ñ/ρ̃. R and ρ are sums over the singular values: one root, no
        search over R. Edge cases of theory.md §6: w_norm = 0 -> 0; eps = 0 -> free_norm."""
        free = self.free_norm
        if w_norm == 0:
            return 0.0
        if eps == 0:
            return free
        if free <= 0 or not self.s.size:
            return 0.0
        target = eps / (w_norm * self._sigma)

        def h(lamt):
            if lamt == 0.0:            # ρ̃(0) = 0 when f is in B's range: h(0+) = ñ(0)/‖β̃/s̃²‖
                if self._o2t > 0:
                    return -target
                return float(np.linalg.norm(self._bt / self._st)
                             / np.linalg.norm(self._bt / self._st ** 2)) - target
            yt, q = self._scaled(lamt)
            rho = np.sqrt(float(np.sum((self._bt * (lamt / q)) ** 2)) + self._o2t)
            return lamt * float(np.linalg.norm(yt)) / rho - target

        # no root when h(0) ≥ 0 (the minimiser is free_norm) or h(∞) ≤ 0 (it is 0): the
        # candidates cover both. Else the root is bracketed by powers of 4 and found in
        # log λ̃, where it is well scaled whatever its magnitude (the bound is flat at its
        # minimum: a relative 1e-10 in λ̃ moves it at second order only)
        candidates = [0.0, free]
        h_inf = float(np.linalg.norm(self._st * self._bt)
                      / np.sqrt(float(np.sum(self._bt ** 2)) + self._o2t)) - target
        if h(0.0) < 0 < h_inf:
            g = lambda t: h(float(np.exp(t)))                  # h on t = log λ̃
            step = float(np.log(4.0))
            hi, g_hi = 0.0, g(0.0)
            while hi < 700 and g_hi < 0:
                hi += step
                g_hi = g(hi)
            lo = hi - step
            g_lo = g(lo)
            while lo > -690 and g_lo >= 0:
                lo -= step
                g_lo = g(lo)
            if g_lo < 0 <= g_hi:
                t = optimize.brentq(g, lo, hi, xtol=1e-10, rtol=4 * np.finfo(float).eps)
                candidates.append(float((self._mu / self._sigma)
                                        * np.linalg.norm(self._scaled(np.exp(t))[0])))
        # compared on a scale where no candidate's value overflows (the bound may be ~1e306
        # for huge labels)
        scale = free * eps + w_norm * self.residual(0.0)
        f = lambda R: (R * eps) / scale + (w_norm / scale) * self.residual(R)
        return min(candidates, key=f)


class ExactSolver:
    """Dense A (m, d): SVD once, then any R."""

    def __init__(self, A, c, rank_scale=None, name="exact-svd"):
        """A may be the pair matrix in any orthonormal coordinates of its row space (the
        span route); rank_scale: as SVDCore's, the full matrix's max(rows, d)."""
        self.A, self.c, self.name = A, c, name
        self.core = SVDCore(A, c, rank_scale)
        self.free_norm = self.core.free_norm
        self.gap = 0.0

    def model_residual(self, R):
        return self.core.residual(R)

    def solve(self, R):
        """(v, ‖A v − c‖) with ‖v‖ ≤ R, the residual evaluated at v."""
        v, _ = self.core.solve(R)
        return v, float(np.linalg.norm(self.A @ v - self.c))


def _reorthogonalise(u, basis):
    """u <- u minus its projection on the orthonormal rows of basis, in place; returns ‖u‖.
    Classical Gram–Schmidt, repeated while a pass removes more than 30 % of the norm (the
    Daniel–Gragg–Kaufman–Stewart test: "twice is enough", and once is when little cancels),
    at most twice."""
    before = float(np.linalg.norm(u))
    for _ in range(2):
        u -= basis.T @ (basis @ u)
        after = float(np.linalg.norm(u))
        if after > 0.7 * before:
            break
        before = after
    return after


_CHECK_EVERY_UNTIL = 12


class GolubKahanSolver:
    """Matrix-free: A given by matvec(v) -> A v and rmatvec(r) -> Aᵀ r."""

    name = "golub-kahan"

    def __init__(self, matvec, rmatvec, c, d, *, tol=1e-8, max_iter=300, monitor=None):
        """monitor(core) -> the quantity the caller reports (e.g. the bound at its optimal R),
        or a tuple of them, on the projected problem: iteration stops when every one stalls
        (relative change <= tol between checks at k = 4, 5, ..., 12, 18, 27, ...); without it,
        when the free residual stalls."""
        self.matvec, self.rmatvec, self.c = matvec, rmatvec, c
        rank_scale = max(c.shape[0], d)
        beta1 = float(np.linalg.norm(c))
        kmax = max(0, min(max_iter, d, c.shape[0]))
        check_fits(f"the Krylov bases of the matrix-free solver ({kmax} × ({c.shape[0]} + {d}))",
                   8 * (kmax + 1) * (c.shape[0] + d))
        # rows are written before they are read: empty, so only the rows used are ever touched
        # (zeroing kmax + 1 rows of every pair costs more than the iterations themselves)
        U = np.empty((kmax + 1, c.shape[0]))
        V = np.empty((kmax, d))
        alphas, betas, history = [], [], []
        exhausted = True          # the Krylov space ran out: the projection is exact
        if beta1 > 0:
            U[0] = c / beta1
        rho_bar_c, phi_bar = 1.0, beta1   # LSQR recurrence for the free residual norm
        checks, next_check = [], 4
        for k in range(kmax if beta1 > 0 else 0):
            v = rmatvec(U[k])
            if k:
                v -= betas[-1] * V[k - 1]
            for _ in range(2):                       # reorthogonalise (CGS2)
                v -= V[:k].T @ (V[:k] @ v)
            a = float(np.linalg.norm(v))
            if a <= 1e-14 * beta1:
                break
            V[k] = v / a
            alphas.append(a)
            u = matvec(V[k]) - a * U[k]
            b = _reorthogonalise(u, U[:k + 1])

            betas.append(b)
            rho_bar = rho_bar_c * a
            rho = np.hypot(rho_bar, b)
            rho_bar_c, phi_bar = rho_bar / rho, phi_bar * b / rho
            history.append(phi_bar)
            if b <= 1e-14 * beta1:
                break
            U[k + 1] = u / b
            if monitor is not None:
                if k + 1 >= next_check:
                    B, f = self._projected(alphas, betas, beta1)
                    checks.append(np.atleast_1d(monitor(SVDCore(B, f, rank_scale))))
                    # every iteration up to _CHECK_EVERY_UNTIL (a check, an SVD of a tiny
                    # B and a root, costs less than an iteration there), then 1.5× apart
                    next_check = next_check + 1 if next_check < _CHECK_EVERY_UNTIL \
                        else int(next_check * 1.5)
                    if len(checks) >= 2 and np.all(np.abs(checks[-2] - checks[-1])
                                                   <= tol * np.abs(checks[-1])):
                        exhausted = False
                        break
            elif k >= 2 and history[-3] - history[-1] <= tol * max(history[-1], tol * beta1):
                exhausted = False
                break
        else:
            exhausted = len(alphas) >= min(d, c.shape[0]) or beta1 == 0
        self.iterations = len(alphas)
        self.V = V[:len(alphas)].T
        B, f = self._projected(alphas, betas, beta1)
        self.core = SVDCore(B, f, rank_scale)
        self.free_norm = self.core.free_norm
        # remaining gap: what the last check (or the last two iterations, in the free residual)
        # still gained: an estimate, not a certificate; 0 when the Krylov space is exhausted
        if exhausted:
            self.gap = 0.0
        elif monitor is not None and len(checks) >= 2:
            self.gap = max(float(checks[-2][0] - checks[-1][0]), 0.0)
        elif len(history) >= 3:
            self.gap = max(history[-3] - history[-1], 0.0)
        else:
            self.gap = history[0] if history else 0.0

    @staticmethod
    def _projected(alphas, betas, beta1):
        k = len(alphas)
        B = np.zeros((k + 1, k))
        for j in range(k):
            B[j, j] = alphas[j]
            B[j + 1, j] = betas[j]
        f = np.zeros(k + 1)
        f[0] = beta1
        return B, f

    def model_residual(self, R):
        return self.core.residual(R)

    def solve(self, R):
        y, _ = self.core.solve(R)
        v = self.V @ y if y.size else np.zeros(self.V.shape[0])
        n = np.linalg.norm(v)
        if n > R:
            v *= R / n
        return v, float(np.linalg.norm(self.matvec(v) - self.c))
