// Fused forward of the VIC-type model (core/physics/vic.py): the whole daily loop in C++, one
// OpenMP thread per site, no autograd. It is the same model as `vic_step` (the reference), step
// for step and in the same order of operations, equal to rounding (the ARNO series multiplies r^n
// up instead of calling pow; components are averaged as a running sum); tests/test_vic.py checks
// the two against each other (1e-10 in double). Used where no gradient is needed: testing a learned θ, the surrogate's Latin-hypercube
// runs and the per-cell SCE-UA calibration.
//
// Layouts (C order): forcing [nt, ns, 3] (P mm/d, T degC, PET mm/d); params [5, ns, nm] in the
// order of VIC_PARAMETERS (infiltr, Ds, Dsmax, Ws, expt), physical units; site: wmax, wcr, wwp
// [ns, 3] (mm), ksat [ns] (mm/d), fv [ns]; state [5, ns, nm] (SNOWPACK, MELTWATER, W1, W2, W3;
// in: initial, out: final); out [N_OUT, nt, ns]: the component means of the outputs in the
// order of VIC_OUTPUT_NAMES.
#include <cmath>
#include <cstdint>

namespace {

constexpr int N_OUT = 14;  // SM SWE W1 W2 W3 PW ET Es Et R Qb Q Q12 Q23
constexpr double EPS = 1e-6;

template <typename T> inline T clampv(T v, T lo, T hi) { return v < lo ? lo : (v > hi ? hi : v); }
template <typename T> inline T maxv(T a, T b) { return a > b ? a : b; }
template <typename T> inline T minv(T a, T b) { return a < b ? a : b; }

// Gravity drainage of a layer over dt, dW/dt = -Ksat (W/Wmax)^expt integrated exactly
// (core/physics/vic.py gravity_drainage): w (1 - r), log r = -softplus(x) / (expt - 1),
// x = log((expt - 1) Ksat dt / Wmax) + (expt - 1) log s0.
template <typename T> inline T drainage(T w, T wmax, T ks, T expt, T dt) {
    const T c1 = expt - T(1);
    const T s0 = clampv(w / wmax, T(EPS), T(1) - T(EPS));
    const T x = std::log(c1 * ks * dt / wmax) + c1 * std::log(s0);
    const T softplus = maxv(x, T(0)) + std::log1p(std::exp(-std::fabs(x)));
    return -w * std::expm1(-softplus / c1);
}

// consts: TT, CFMAX, CFR, CWH (snow), root fractions of layers 1-3, depth of layer 1 (m), the
// number of drainage sub-steps and of ARNO series terms, the residual water of layers 1-3 (mm;
// VIC's resid_moist): passed from core/physics/vic.py, the one place they are defined.
template <typename T>
void forward(int64_t nt, int64_t ns, int64_t nm, const T* forcing, const T* params,
             const T* wmax, const T* wcr, const T* wwp, const T* ksat, const T* fv,
             const double* consts, T* state, T* out) {
    const T TT = T(consts[0]), CFMAX = T(consts[1]), CFR = T(consts[2]), CWH = T(consts[3]);
    const T ROOT[3] = {T(consts[4]), T(consts[5]), T(consts[6])};
    const T DEPTH1 = T(consts[7]);
    const int SUBSTEPS = int(consts[8]), ARNO_TERMS = int(consts[9]);
    const T RES[3] = {T(consts[10]), T(consts[11]), T(consts[12])};
#pragma omp parallel for schedule(static)
    for (int64_t s = 0; s < ns; ++s) {
        const T w1max = wmax[s * 3], w2max = wmax[s * 3 + 1], w3max = wmax[s * 3 + 2];
        const T f = fv[s], ks = ksat[s];
        for (int64_t k = 0; k < nm; ++k) {
            const int64_t pk = s * nm + k;
            const T b = params[0 * ns * nm + pk], ds = params[1 * ns * nm + pk];
            const T dsmax = params[2 * ns * nm + pk], ws = params[3 * ns * nm + pk];
            const T expt = params[4 * ns * nm + pk];
            T snowpack = state[0 * ns * nm + pk], meltwater = state[1 * ns * nm + pk];
            T w1 = state[2 * ns * nm + pk], w2 = state[3 * ns * nm + pk], w3 = state[4 * ns * nm + pk];
            const T inv_b1 = T(1) / (T(1) + b);
            const T lin = dsmax * ds / ws, nonlin = dsmax * (T(1) - ds / ws);
            for (int64_t t = 0; t < nt; ++t) {
                const T* fr = forcing + (t * ns + s) * 3;
                const T P = fr[0], Tair = fr[1], PET = fr[2];
                // 1. snow (core/physics/snow.py)
                const T rain = Tair >= TT ? P : T(0);
                const T snow = P - rain;
                snowpack += snow;
                const T melt = minv(maxv(CFMAX * (Tair - TT), T(0)), snowpack);
                meltwater += melt;
                snowpack -= melt;
                const T refreeze = minv(maxv(CFR * CFMAX * (TT - Tair), T(0)), meltwater);
                snowpack += refreeze;
                meltwater -= refreeze;
                const T tosoil = maxv(meltwater - CWH * snowpack, T(0));
                meltwater -= tosoil;
                const T pw = rain + tosoil;
                // 2. ET: ARNO bare soil from layer 1, transpiration by root fraction
                const T x = clampv(T(1) - w1 / w1max, T(EPS), T(1) - T(EPS));
                const T r = std::pow(x, inv_b1);
                const T as = T(1) - std::pow(r, b);
                T series = T(0), rn = T(1);
                for (int n = 1; n <= ARNO_TERMS; ++n) {
                    rn *= r;
                    series += b * rn / (b + T(n));
                }
                series += T(1);
                const T beta = as + (T(1) - as) * (T(1) - r) * series;
                const T es = minv((T(1) - f) * PET * beta, maxv(w1 - RES[0], T(0)));
                w1 -= es;
                T* layer[3] = {&w1, &w2, &w3};
                T et_t = T(0);
                for (int l = 0; l < 3; ++l) {
                    const T wl = *layer[l], wp = wwp[s * 3 + l], cr = wcr[s * 3 + l];
                    const T stress = clampv((wl - wp) / (cr - wp), T(0), T(1));
                    const T avail = maxv(wl - maxv(wp, RES[l]), T(0));
                    const T e = minv(f * PET * ROOT[l] * stress, avail);
                    *layer[l] = wl - e;
                    et_t += e;
                }
                // 3. variable infiltration curve over layers 1 + 2
                const T w = w1 + w2, wm = w1max + w2max;
                const T im = (T(1) + b) * wm, deficit = wm - w;
                const T i0 = im * (T(1) - std::pow(clampv(T(1) - w / wm, T(EPS), T(1) - T(EPS)), inv_b1));
                T runoff;
                if (i0 + pw >= im) {
                    runoff = pw - deficit;
                } else {
                    const T rest = std::pow(clampv(T(1) - (i0 + pw) / im, T(EPS), T(1) - T(EPS)), T(1) + b);
                    runoff = pw - deficit + wm * rest;
                }
                runoff = minv(maxv(runoff, T(0)), pw);
                const T infil = pw - runoff;
                const T fill1 = minv(infil, w1max - w1);
                w1 += fill1;
                w2 += infil - fill1;
                // 4. drainage and ARNO baseflow, bottom layer first, in sub-steps
                const T dt = T(1) / T(SUBSTEPS);
                T qb = 0, q12 = 0, q23 = 0;
                for (int j = 0; j < SUBSTEPS; ++j) {
                    const T sr = clampv((w3 - RES[2]) / (w3max - RES[2]), T(0), T(1));
                    const T ex = maxv((sr - ws) / (T(1) - ws), T(0));
                    T q = maxv(dt * (lin * sr + nonlin * ex * ex), T(0));
                    q = minv(q, maxv(w3 - RES[2], T(0)));
                    w3 -= q;
                    const T d23 = minv(drainage(maxv(w2 - RES[1], T(0)), w2max - RES[1], ks, expt, dt), w3max - w3);
                    w2 -= d23;
                    w3 += d23;
                    const T d12 = minv(drainage(maxv(w1 - RES[0], T(0)), w1max - RES[0], ks, expt, dt), w2max - w2);
                    w1 -= d12;
                    w2 += d12;
                    qb += q;
                    q12 += d12;
                    q23 += d23;
                }
                const T vals[N_OUT] = {w1 / (T(1000) * DEPTH1), snowpack + meltwater, w1, w2, w3, pw,
                                       es + et_t, es, et_t, runoff, qb, runoff + qb, q12, q23};
                const T wgt = T(1) / T(nm);
                for (int o = 0; o < N_OUT; ++o) {
                    T& dst = out[(o * nt + t) * ns + s];
                    if (k == 0) dst = vals[o] * wgt; else dst += vals[o] * wgt;
                }
            }
            state[0 * ns * nm + pk] = snowpack;
            state[1 * ns * nm + pk] = meltwater;
            state[2 * ns * nm + pk] = w1;
            state[3 * ns * nm + pk] = w2;
            state[4 * ns * nm + pk] = w3;
        }
    }
}

}  // namespace

extern "C" {
void vic_forward_f64(int64_t nt, int64_t ns, int64_t nm, const double* forcing, const double* params,
                     const double* wmax, const double* wcr, const double* wwp, const double* ksat,
                     const double* fv, const double* consts, double* state, double* out) {
    forward<double>(nt, ns, nm, forcing, params, wmax, wcr, wwp, ksat, fv, consts, state, out);
}
void vic_forward_f32(int64_t nt, int64_t ns, int64_t nm, const float* forcing, const float* params,
                     const float* wmax, const float* wcr, const float* wwp, const float* ksat,
                     const float* fv, const double* consts, float* state, float* out) {
    forward<float>(nt, ns, nm, forcing, params, wmax, wcr, wwp, ksat, fv, consts, state, out);
}
const char* vic_output_names() { return "SM,SWE,W1,W2,W3,PW,ET,Es,Et,R,Qb,Q,Q12,Q23"; }
const char* vic_param_names() { return "infiltr,Ds,Dsmax,Ws,expt"; }
}
