// Fused HBV time loop: forward and hand-derived adjoint (reverse-time) for CPU.
//
// Same equations, operation order and autograd conventions as the reference
// core/physics/hbv.py::hbv_step (Feng et al. 2022, Table 1):
//   * torch.minimum(a, b) backward: the gradient goes to the smaller argument, split 50/50 on ties;
//   * torch.clamp(x, lo, hi) backward: passes where lo <= x <= hi (inclusive);
//   * pow(x, e) backward: e * x^(e-1) for x, x^e * log(x) for e;
//   * a / b backward: g / b for a, -g * a / (b * b) for b;
//   * the rain/snow switch [T >= TT] carries no gradient.
// Parameter and output orders are exported (hbv_param_names / hbv_output_names) and checked by
// core/physics/fused.py against core/physics/spec.py, so both implementations read one spec.
//
// Layouts (all C-contiguous): forcing P, T, PET [nt, nb]; each parameter [nt or 1, nb, nm]
// (time stride given per parameter, 0 for static); states [5, nb, nm];
// outputs [nt, 18, nb] (component mean) or [nt, 18, nb, nm]; saved (the tape) [nb, nm, nt, 7]: the 5 states
// entering each day plus the two power-law efficiencies wet = xc^BETA and eta = yc^GAMMA, so the
// backward pass recomputes the day without any pow().
// Parallel over basins (OpenMP), so gradient accumulation needs no atomics.

#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr int NP = 13;   // parameters incl. GAMMA
constexpr int NS = 5;    // states
constexpr int NO = 18;   // outputs: 5 states + 13 fluxes
constexpr int NSAVE = 7; // saved per day: 5 states + wet + eta
constexpr double POW_FLOOR = 1e-6;

enum { BETA, FC, K0, K1, K2, LP, PERC, UZL, TT, CFMAX, CFR, CWH, GAMMA };

template <typename S>
struct Step {
  S r, rain, snow, sp1, mp, mc, melt, mw1, sp2, cc, dT, rp, rc, refr, sp3, mw2, ts_pre, tosoil, mw3;
  S x, xc, wet, infil, rech, sm1, ex_pre, excess, sm2, denom, y, yc, eta, etp, et, sm3;
  S suz1, perc, suz2, q0_pre, q0m, q0, suz3, q1, suz4, slz1, q2, slz2, qu;
};

template <typename S>
inline S clamp_lo(S x, S lo) { return x < lo ? lo : x; }
template <typename S>
inline S clamp_lohi(S x, S lo, S hi) { return x < lo ? lo : (x > hi ? hi : x); }
template <typename S>
inline S min2(S a, S b) { return b < a ? b : a; }

template <typename S>
inline void min_bwd(S a, S b, S g, S& ga, S& gb) {
  if (a < b) ga += g;
  else if (a > b) gb += g;
  else { ga += g * S(0.5); gb += g * S(0.5); }
}

template <typename S>
// lazy (no tape, no gradient): skip pow() where its value is multiplied by an exact zero (no water
// entering the soil, zero PET) or is exactly 1 (full soil); the outputs are bit-identical.
inline void step_fwd(S P, S T, S PET, S sp, S mw, S sm, S suz, S slz, const S* p, bool gamma, Step<S>& s,
                     const S* pre = nullptr, bool lazy = false) {
  const S tt = p[TT], cfmax = p[CFMAX], fc = p[FC];
  // snow routine
  s.r = (T >= tt) ? S(1) : S(0);
  s.rain = P * s.r;
  s.snow = P - s.rain;
  s.sp1 = sp + s.snow;
  s.dT = T - tt;
  s.mp = cfmax * s.dT;
  s.mc = clamp_lo(s.mp, S(0));
  s.melt = min2(s.mc, s.sp1);
  s.mw1 = mw + s.melt;
  s.sp2 = s.sp1 - s.melt;
  s.cc = p[CFR] * cfmax;
  s.rp = s.cc * (tt - T);
  s.rc = clamp_lo(s.rp, S(0));
  s.refr = min2(s.rc, s.mw1);
  s.sp3 = s.sp2 + s.refr;
  s.mw2 = s.mw1 - s.refr;
  s.ts_pre = s.mw2 - p[CWH] * s.sp3;
  s.tosoil = clamp_lo(s.ts_pre, S(0));
  s.mw3 = s.mw2 - s.tosoil;
  // soil routine
  s.x = sm / fc;
  s.xc = clamp_lohi(s.x, S(POW_FLOOR), S(1));
  s.infil = s.rain + s.tosoil;
  if (pre) s.wet = pre[0];
  else if (lazy && (s.infil == S(0) || s.xc == S(1))) s.wet = s.xc == S(1) ? S(1) : S(0);
  else s.wet = std::pow(s.xc, p[BETA]);
  s.rech = s.infil * s.wet;
  s.sm1 = sm + s.infil - s.rech;
  s.ex_pre = s.sm1 - fc;
  s.excess = clamp_lo(s.ex_pre, S(0));
  s.sm2 = s.sm1 - s.excess;
  s.denom = p[LP] * fc;
  s.y = s.sm2 / s.denom;
  s.yc = clamp_lohi(s.y, S(POW_FLOOR), S(1));
  if (!gamma) s.eta = s.yc;
  else if (pre) s.eta = pre[1];
  else if (lazy && (PET == S(0) || s.yc == S(1))) s.eta = s.yc == S(1) ? S(1) : S(0);
  else s.eta = std::pow(s.yc, p[GAMMA]);
  s.etp = PET * s.eta;
  s.et = min2(s.etp, s.sm2);
  s.sm3 = s.sm2 - s.et;
  // upper and lower zones
  s.suz1 = suz + s.rech + s.excess;
  s.perc = min2(s.suz1, p[PERC]);
  s.suz2 = s.suz1 - s.perc;
  s.q0_pre = s.suz2 - p[UZL];
  s.q0m = clamp_lo(s.q0_pre, S(0));
  s.q0 = p[K0] * s.q0m;
  s.suz3 = s.suz2 - s.q0;
  s.q1 = p[K1] * s.suz3;
  s.suz4 = s.suz3 - s.q1;
  s.slz1 = slz + s.perc;
  s.q2 = p[K2] * s.slz1;
  s.slz2 = s.slz1 - s.q2;
  s.qu = s.q0 + s.q1 + s.q2;
}

template <typename S>
inline void outputs_of(const Step<S>& s, S* o) {
  o[0] = s.sp3; o[1] = s.mw3; o[2] = s.sm3; o[3] = s.suz4; o[4] = s.slz2;
  o[5] = s.rain; o[6] = s.snow; o[7] = s.melt; o[8] = s.refr; o[9] = s.tosoil; o[10] = s.rech;
  o[11] = s.excess; o[12] = s.et; o[13] = s.perc; o[14] = s.q0; o[15] = s.q1; o[16] = s.q2;
  o[17] = s.qu;
}

// Reverse of step_fwd. go: adjoints of the 18 outputs of this step (state outputs already include
// the adjoint carried from the next step). gs: on return, adjoints of the 5 input states.
// gp: parameter adjoints are accumulated. gP/gT/gPET: forcing adjoints accumulated.
template <typename S>
inline void step_bwd(S P, S T, S PET, S sm, const S* p, bool gamma, const Step<S>& s, const S* go,
                     S* gs, S* gp, S& gP, S& gT, S& gPET) {
  const S fc = p[FC], cfmax = p[CFMAX];
  S g_sp3 = go[0], g_mw3 = go[1], g_sm3 = go[2], g_suz4 = go[3], g_slz2 = go[4];
  S g_rain = go[5], g_snow = go[6], g_melt = go[7], g_refr = go[8], g_tosoil = go[9];
  S g_rech = go[10], g_excess = go[11], g_et = go[12], g_perc = go[13];
  S g_q0 = go[14], g_q1 = go[15], g_q2 = go[16];
  const S g_qu = go[17];
  // qu = q0 + q1 + q2
  g_q0 += g_qu; g_q1 += g_qu; g_q2 += g_qu;
  // slz2 = slz1 - q2 ; q2 = K2 * slz1 ; slz1 = slz + perc
  S g_slz1 = g_slz2;
  g_q2 -= g_slz2;
  gp[K2] += g_q2 * s.slz1;
  g_slz1 += g_q2 * p[K2];
  const S g_slz = g_slz1;
  g_perc += g_slz1;
  // suz4 = suz3 - q1 ; q1 = K1 * suz3
  S g_suz3 = g_suz4;
  g_q1 -= g_suz4;
  gp[K1] += g_q1 * s.suz3;
  g_suz3 += g_q1 * p[K1];
  // suz3 = suz2 - q0 ; q0 = K0 * q0m ; q0m = clamp(q0_pre, 0) ; q0_pre = suz2 - UZL
  S g_suz2 = g_suz3;
  g_q0 -= g_suz3;
  gp[K0] += g_q0 * s.q0m;
  const S g_q0pre = (s.q0_pre >= S(0)) ? g_q0 * p[K0] : S(0);
  g_suz2 += g_q0pre;
  gp[UZL] -= g_q0pre;
  // suz2 = suz1 - perc ; perc = min(suz1, PERC)
  S g_suz1 = g_suz2;
  g_perc -= g_suz2;
  min_bwd(s.suz1, p[PERC], g_perc, g_suz1, gp[PERC]);
  // suz1 = suz + rech + excess
  const S g_suz = g_suz1;
  g_rech += g_suz1;
  g_excess += g_suz1;
  // sm3 = sm2 - et ; et = min(etp, sm2) ; etp = PET * eta
  S g_sm2 = g_sm3;
  g_et -= g_sm3;
  S g_etp = 0;
  min_bwd(s.etp, s.sm2, g_et, g_etp, g_sm2);
  gPET += g_etp * s.eta;
  const S g_eta = g_etp * PET;
  S g_yc;
  if (gamma) {
    g_yc = g_eta * p[GAMMA] * (s.eta / s.yc);  // yc^(γ-1) = eta / yc, yc ≥ floor > 0
    if (g_eta != S(0)) gp[GAMMA] += g_eta * s.eta * std::log(s.yc);  // skip log on dry/zero-PET days
  } else {
    g_yc = g_eta;
  }
  // yc = clamp(y, floor, 1) ; y = sm2 / denom ; denom = LP * FC
  const S g_y = (s.y >= S(POW_FLOOR) && s.y <= S(1)) ? g_yc : S(0);
  g_sm2 += g_y / s.denom;
  const S g_denom = -g_y * s.sm2 / (s.denom * s.denom);
  gp[LP] += g_denom * fc;
  gp[FC] += g_denom * p[LP];
  // sm2 = sm1 - excess ; excess = clamp(ex_pre, 0) ; ex_pre = sm1 - FC
  S g_sm1 = g_sm2;
  g_excess -= g_sm2;
  const S g_expre = (s.ex_pre >= S(0)) ? g_excess : S(0);
  g_sm1 += g_expre;
  gp[FC] -= g_expre;
  // sm1 = sm + infil - rech ; rech = infil * wet ; wet = xc ^ BETA
  S g_sm = g_sm1;
  S g_infil = g_sm1;
  g_rech -= g_sm1;
  g_infil += g_rech * s.wet;
  const S g_wet = g_rech * s.infil;
  const S g_xc = g_wet * p[BETA] * (s.wet / s.xc);  // xc^(β-1) = wet / xc, xc ≥ floor > 0
  if (g_wet != S(0)) gp[BETA] += g_wet * s.wet * std::log(s.xc);  // skip log when no water enters
  // xc = clamp(x, floor, 1) ; x = sm / FC
  const S g_x = (s.x >= S(POW_FLOOR) && s.x <= S(1)) ? g_xc : S(0);
  g_sm += g_x / fc;
  gp[FC] -= g_x * sm / (fc * fc);
  // infil = rain + tosoil
  g_rain += g_infil;
  g_tosoil += g_infil;
  // mw3 = mw2 - tosoil ; tosoil = clamp(ts_pre, 0) ; ts_pre = mw2 - CWH * sp3
  S g_mw2 = g_mw3;
  g_tosoil -= g_mw3;
  const S g_tspre = (s.ts_pre >= S(0)) ? g_tosoil : S(0);
  g_mw2 += g_tspre;
  gp[CWH] -= g_tspre * s.sp3;
  g_sp3 -= g_tspre * p[CWH];
  // mw2 = mw1 - refr ; sp3 = sp2 + refr ; refr = min(rc, mw1) ; rc = clamp(rp, 0)
  S g_mw1 = g_mw2;
  g_refr -= g_mw2;
  const S g_sp2 = g_sp3;
  g_refr += g_sp3;
  S g_rc = 0;
  min_bwd(s.rc, s.mw1, g_refr, g_rc, g_mw1);
  const S g_rp = (s.rp >= S(0)) ? g_rc : S(0);
  // rp = cc * (TT - T) ; cc = CFR * CFMAX
  const S g_cc = g_rp * (p[TT] - T);
  const S g_d = g_rp * s.cc;
  gp[CFR] += g_cc * cfmax;
  gp[CFMAX] += g_cc * p[CFR];
  gp[TT] += g_d;
  gT -= g_d;
  // sp2 = sp1 - melt ; mw1 = mw + melt ; melt = min(mc, sp1) ; mc = clamp(mp, 0) ; mp = CFMAX*(T-TT)
  S g_sp1 = g_sp2;
  g_melt -= g_sp2;
  const S g_mw = g_mw1;
  g_melt += g_mw1;
  S g_mc = 0;
  min_bwd(s.mc, s.sp1, g_melt, g_mc, g_sp1);
  const S g_mp = (s.mp >= S(0)) ? g_mc : S(0);
  gp[CFMAX] += g_mp * s.dT;
  gT += g_mp * cfmax;
  gp[TT] -= g_mp * cfmax;
  // sp1 = sp + snow ; snow = P - rain ; rain = P * r
  const S g_sp = g_sp1;
  g_snow += g_sp1;
  gP += g_snow;
  g_rain -= g_snow;
  gP += g_rain * s.r;
  gs[0] = g_sp; gs[1] = g_mw; gs[2] = g_sm; gs[3] = g_suz; gs[4] = g_slz;
}

// Loop order: basins in parallel; each component runs through time on its own, its static
// parameters held in registers (time stride 0) and its tape contiguous in time.
template <typename S>
inline void load_params(const S* const* par, const int64_t* pstride, int npar, int64_t t, int64_t off,
                        S* p) {
  for (int i = 0; i < npar; ++i)
    if (pstride[i]) p[i] = par[i][t * pstride[i] + off];
}

template <typename S>
void forward(int64_t nt, int64_t nb, int64_t nm, const S* P, const S* T, const S* PET,
             const S* const* par, const int64_t* pstride, int gamma, const S* state0, S* out,
             int mean_out, S* state_final, S* saved, int nthreads) {
  const int npar = gamma ? NP : NP - 1;
  const S inv_nm = S(1) / S(nm);
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t b = 0; b < nb; ++b) {
    // component sums of this basin, contiguous in time; written to the strided output once
    std::vector<S> acc(mean_out ? nt * NO : 0, S(0));
    for (int64_t m = 0; m < nm; ++m) {
      const int64_t off = b * nm + m;
      S p[NP] = {0};
      for (int i = 0; i < npar; ++i) p[i] = par[i][off];  // static ones stay for all t
      S st[NS];
      for (int k = 0; k < NS; ++k) st[k] = state0[k * nb * nm + off];
      S o[NO];
      Step<S> s;
      S* tape = saved ? saved + off * nt * NSAVE : nullptr;
      for (int64_t t = 0; t < nt; ++t) {
        load_params(par, pstride, npar, t, off, p);
        step_fwd<S>(P[t * nb + b], T[t * nb + b], PET[t * nb + b], st[0], st[1], st[2], st[3], st[4], p,
                    gamma != 0, s, nullptr, tape == nullptr);
        if (tape) {
          S* sv = tape + t * NSAVE;
          for (int k = 0; k < NS; ++k) sv[k] = st[k];
          sv[NS] = s.wet;
          sv[NS + 1] = s.eta;
        }
        outputs_of(s, o);
        for (int k = 0; k < NS; ++k) st[k] = o[k];
        if (mean_out)
          for (int k = 0; k < NO; ++k) acc[t * NO + k] += o[k];
        else
          for (int k = 0; k < NO; ++k) out[((t * NO + k) * nb + b) * nm + m] = o[k];
      }
      for (int k = 0; k < NS; ++k) state_final[k * nb * nm + off] = st[k];
    }
    if (mean_out)
      for (int64_t t = 0; t < nt; ++t)
        for (int k = 0; k < NO; ++k) out[(t * NO + k) * nb + b] = acc[t * NO + k] * inv_nm;
  }
}

template <typename S>
void backward(int64_t nt, int64_t nb, int64_t nm, const S* P, const S* T, const S* PET,
              const S* const* par, const int64_t* pstride, int gamma, const S* saved, const S* g_out,
              int mean_out, const S* g_final, S* gP, S* gT, S* gPET, S* const* gpar, S* g_state0,
              int nthreads) {
  const int npar = gamma ? NP : NP - 1;
  const S inv_nm = S(1) / S(nm);
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t b = 0; b < nb; ++b) {
    // this basin's output adjoints (already divided by nm), contiguous in time, gathered once
    std::vector<S> gmean(mean_out ? nt * NO : 0);
    if (mean_out)
      for (int64_t t = 0; t < nt; ++t)
        for (int k = 0; k < NO; ++k) gmean[t * NO + k] = g_out[(t * NO + k) * nb + b] * inv_nm;
    for (int64_t m = 0; m < nm; ++m) {
      const int64_t off = b * nm + m;
      S p[NP] = {0};
      for (int i = 0; i < npar; ++i) p[i] = par[i][off];
      S carry[NS];  // adjoint of the state leaving the current day
      for (int k = 0; k < NS; ++k) carry[k] = g_final ? g_final[k * nb * nm + off] : S(0);
      S gstatic[NP] = {0};  // static-parameter adjoints, summed over time, written once
      S go[NO], gs[NS], gp[NP];
      Step<S> s;
      const S* tape = saved + off * nt * NSAVE;
      for (int64_t t = nt - 1; t >= 0; --t) {
        load_params(par, pstride, npar, t, off, p);
        const S* sv = tape + t * NSAVE;
        const S pre[2] = {sv[NS], sv[NS + 1]};
        step_fwd<S>(P[t * nb + b], T[t * nb + b], PET[t * nb + b], sv[0], sv[1], sv[2], sv[3], sv[4], p,
                    gamma != 0, s, pre);
        for (int k = 0; k < NO; ++k)
          go[k] = mean_out ? gmean[t * NO + k] : g_out[((t * NO + k) * nb + b) * nm + m];
        for (int k = 0; k < NS; ++k) go[k] += carry[k];
        for (int i = 0; i < NP; ++i) gp[i] = 0;
        S gPt = 0, gTt = 0, gPETt = 0;
        step_bwd<S>(P[t * nb + b], T[t * nb + b], PET[t * nb + b], sv[2], p, gamma != 0, s, go, gs, gp,
                    gPt, gTt, gPETt);
        gP[t * nb + b] += gPt;
        gT[t * nb + b] += gTt;
        gPET[t * nb + b] += gPETt;
        for (int k = 0; k < NS; ++k) carry[k] = gs[k];
        for (int i = 0; i < npar; ++i) {
          if (pstride[i]) gpar[i][t * pstride[i] + off] += gp[i];
          else gstatic[i] += gp[i];
        }
      }
      for (int i = 0; i < npar; ++i)
        if (!pstride[i]) gpar[i][off] += gstatic[i];
      for (int k = 0; k < NS; ++k) g_state0[k * nb * nm + off] = carry[k];
    }
  }
}

}  // namespace

extern "C" {

const char* hbv_param_names() { return "BETA,FC,K0,K1,K2,LP,PERC,UZL,TT,CFMAX,CFR,CWH,GAMMA"; }
const char* hbv_output_names() {
  return "SNOWPACK,MELTWATER,SM,SUZ,SLZ,RAIN,SNOW,MELT,REFREEZE,TOSOIL,RECHARGE,EXCESS,ET,PERC,Q0,Q1,Q2,Q_unrouted";
}

#define HBV_EXPORT(S, SUFFIX)                                                                       \
  void hbv_forward_##SUFFIX(int64_t nt, int64_t nb, int64_t nm, const S* P, const S* T, const S* PET, \
                            const S* const* par, const int64_t* pstride, int gamma, const S* state0, \
                            S* out, int mean_out, S* state_final, S* saved, int nthreads) {          \
    forward<S>(nt, nb, nm, P, T, PET, par, pstride, gamma, state0, out, mean_out, state_final, saved, \
               nthreads);                                                                           \
  }                                                                                                 \
  void hbv_backward_##SUFFIX(int64_t nt, int64_t nb, int64_t nm, const S* P, const S* T, const S* PET, \
                             const S* const* par, const int64_t* pstride, int gamma, const S* saved,  \
                             const S* g_out, int mean_out, const S* g_final, S* gP, S* gT, S* gPET,  \
                             S* const* gpar, S* g_state0, int nthreads) {                           \
    backward<S>(nt, nb, nm, P, T, PET, par, pstride, gamma, saved, g_out, mean_out, g_final, gP, gT,  \
                gPET, gpar, g_state0, nthreads);                                                    \
  }

HBV_EXPORT(float, f32)
HBV_EXPORT(double, f64)

}  // extern "C"
