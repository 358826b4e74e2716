// Fused HBV time loop: forward and hand-derived adjoint (reverse-time) for CPU.
//
// Same equations, operation order and autograd conventions as the reference
// core/physics/hbv.py::hbv_step (Feng et al. 2022, Table 1):
//   * torch.minimum(a, b) backward: the gradient goes to the smaller argument, split 50/50 on ties;
//   * torch.clamp(x, lo, hi) backward: passes where lo <= x <= hi (inclusive);
//   * pow(x, e) backward: e * x^(e-1) for x, x^e * log(x) for e;
//   * a / b backward: g / b for a, -g * a / (b * b) for b;
//   * the rain/snow switch [T >= TT] carries no gradient;
//   * the optional soil-moisture floor after ET (sm_floor > 0: Feng et al.'s release conventions,
//     torch.clamp(sm, min=sm_floor)) passes the gradient where sm >= sm_floor; sm_floor = 0 skips it,
//     so HydroLens's own conventions run exactly the code they ran before the floor existed.
//   * δn(NN_r) (nnw != nullptr): the soil-wetness power law is replaced by RechargeNet
//     (core/physics/hbv.py): wet = sigmoid(MLP(FC·s0, BETA·s1, SM·s2, SM/FC, log1p(IN)·s3)) with two
//     tanh layers of width H, IN = RAIN + TOSOIL, RECHARGE = IN·wet. The network's weights are one
//     flat buffer [s0, s1, s2, s3, W1 (H×5), b1, W2 (H×H), b2, W3 (H), b3] (torch.nn.Linear's
//     row-major [out, in]); the backward pass recomputes the two hidden layers from the taped SM
//     and returns each basin's weight adjoints (summed over its components and days) in
//     gnn [nb, len(buffer)] (the four scales get 0).
// Parameter and output orders are exported (hbv_param_names / hbv_output_names) and checked by
// core/physics/fused.py against core/physics/spec.py, so both implementations read one spec.
//
// Layouts (all C-contiguous), time innermost wherever a basin streams through time, so each
// basin reads and writes contiguous memory: forcing P, T, PET [nb, nt] (and their adjoints); each
// parameter [nt or 1, nb, nm] (time stride given per parameter, 0 for static); states [5, nb, nm];
// outputs [18, nb, nt] (component mean) or [18, nb, nm, nt]; saved (the tape)
// [nb, ng, nt, 7, W] with ng = ceil(nm / W) lane groups: the 5 states entering each day plus the
// two power-law efficiencies wet = xc^BETA and eta = yc^GAMMA, so the backward pass recomputes the
// day without any pow().
//
// SIMD: the components of a basin run in the lanes of a vector (GCC vector extensions; W = 8
// floats or 4 doubles in 32 bytes), so every step is one chain of vector operations for W
// components; thresholds become lane selects (a < b ? x : y on vectors). pow(x, e) is
// exp(e·log x) with x in [1e-6, 1]; with -DHBV_MVEC the vector exp/log of glibc's libmvec
// (AVX2, <= 4 ulp) are used, otherwise std::exp/std::log lane by lane. The lanes of a last,
// partial group repeat the group's first component and are never stored.
// Parallel over basins (OpenMP), so gradient accumulation needs no atomics.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(HBV_MVEC) && !defined(__AVX2__)
#undef HBV_MVEC  // libmvec's 32-byte variants need AVX2
#endif
#if defined(HBV_MVEC)
#include <immintrin.h>
extern "C" {
__m256 _ZGVdN8v_expf(__m256);
__m256 _ZGVdN8v_logf(__m256);
__m256d _ZGVdN4v_exp(__m256d);
__m256d _ZGVdN4v_log(__m256d);
}
#endif

namespace {

typedef float vf __attribute__((vector_size(32)));
typedef double vd __attribute__((vector_size(32)));

template <typename E> struct Lanes;
template <> struct Lanes<float> { using V = vf; static constexpr int W = 8; };
template <> struct Lanes<double> { using V = vd; static constexpr int W = 4; };
template <typename V> struct Elem;
template <> struct Elem<vf> { using E = float; static constexpr int W = 8; };
template <> struct Elem<vd> { using E = double; static constexpr int W = 4; };

template <typename V> inline V K(double c) { return V{} + typename Elem<V>::E(c); }

template <typename V> inline bool any_nonzero(V x) {
  for (int i = 0; i < Elem<V>::W; ++i)
    if (x[i] != 0) return true;
  return false;
}
template <typename V, typename M> inline bool all_true(M m) {
  for (int i = 0; i < Elem<V>::W; ++i)
    if (!m[i]) return false;
  return true;
}

#if defined(HBV_MVEC)
inline vf vlog(vf x) { return (vf)_ZGVdN8v_logf((__m256)x); }
inline vf vexp(vf x) { return (vf)_ZGVdN8v_expf((__m256)x); }
inline vd vlog(vd x) { return (vd)_ZGVdN4v_log((__m256d)x); }
inline vd vexp(vd x) { return (vd)_ZGVdN4v_exp((__m256d)x); }
#else
template <typename V> inline V vlog(V x) {
  for (int i = 0; i < Elem<V>::W; ++i) x[i] = std::log(x[i]);
  return x;
}
template <typename V> inline V vexp(V x) {
  for (int i = 0; i < Elem<V>::W; ++i) x[i] = std::exp(x[i]);
  return x;
}
#endif
// x^e for x in [POW_FLOOR, 1]: exp(e·log x); exactly 1 at x = 1
template <typename V> inline V vpow(V x, V e) { return vexp(e * vlog(x)); }
// tanh through one exp of -2|x| (no overflow); sigmoid as 1 / (1 + exp(-z)) (0 at exp overflow)
template <typename V> inline V vtanh(V x) {
  const V ax = x < 0 ? -x : x;
  const V e = vexp(K<V>(-2) * ax);
  const V t = (K<V>(1) - e) / (K<V>(1) + e);
  return x < 0 ? -t : t;
}
template <typename V> inline V vsigmoid(V z) { return K<V>(1) / (K<V>(1) + vexp(-z)); }

// load lanes [0, n) of a group from p (stride 1); lanes >= n repeat lane 0
template <typename V> inline V load(const typename Elem<V>::E* p, int n) {
  constexpr int W = Elem<V>::W;
  V v;
  if (n == W) { std::memcpy(&v, p, sizeof(V)); return v; }
  for (int i = 0; i < W; ++i) v[i] = p[i < n ? i : 0];
  return v;
}
template <typename V> inline void store(typename Elem<V>::E* p, V v, int n) {
  if (n == Elem<V>::W) { std::memcpy(p, &v, sizeof(V)); return; }
  for (int i = 0; i < n; ++i) p[i] = v[i];
}
template <typename V> inline typename Elem<V>::E hsum(V v, int n) {
  typename Elem<V>::E s = 0;
  for (int i = 0; i < n; ++i) s += v[i];
  return s;
}

constexpr int NP = 13;   // parameters incl. GAMMA
constexpr int NS = 5;    // states
constexpr int NO = 18;   // outputs: 5 states + 13 fluxes
constexpr int NSAVE = 7; // saved per day: 5 states + wet + eta
constexpr double POW_FLOOR = 1e-6;

enum { BETA, FC, K0, K1, K2, LP, PERC, UZL, TT, CFMAX, CFR, CWH, GAMMA };

constexpr int NN_IN = 5;     // RechargeNet inputs
constexpr int NN_HMAX = 64;  // widest hidden layer the kernel takes (core/physics/fused.py checks)
constexpr int NN_SCALES = 4; // s0..s3 at the head of the weight buffer

// δn(NN_r)'s network: the flat weight buffer (layout above) and its hidden width
template <typename S> struct Net {
  const typename Elem<S>::E* w;
  int H;
  const typename Elem<S>::E* W1() const { return w + NN_SCALES; }
  const typename Elem<S>::E* b1() const { return W1() + H * NN_IN; }
  const typename Elem<S>::E* W2() const { return b1() + H; }
  const typename Elem<S>::E* b2() const { return W2() + H * H; }
  const typename Elem<S>::E* W3() const { return b2() + H; }
  typename Elem<S>::E b3() const { return W3()[H]; }
  int size() const { return NN_SCALES + H * NN_IN + H + H * H + H + H + 1; }
  // the five inputs of RechargeNet.forward
  void inputs(S fc, S beta, S sm, S x, S infil, S* u) const {
    u[0] = fc * w[0]; u[1] = beta * w[1]; u[2] = sm * w[2]; u[3] = x; u[4] = vlog(K<S>(1) + infil) * w[3];
  }
  // wet = sigmoid(W3·tanh(W2·tanh(W1·u + b1) + b2) + b3); h1, h2: the hidden layers
  S wet(const S* u, S* h1, S* h2) const {
    for (int j = 0; j < H; ++j) {
      S a = K<S>(b1()[j]);
      for (int i = 0; i < NN_IN; ++i) a += K<S>(W1()[j * NN_IN + i]) * u[i];
      h1[j] = vtanh(a);
    }
    S z = K<S>(b3());
    for (int k = 0; k < H; ++k) {
      S a = K<S>(b2()[k]);
      for (int j = 0; j < H; ++j) a += K<S>(W2()[k * H + j]) * h1[j];
      h2[k] = vtanh(a);
      z += K<S>(W3()[k]) * h2[k];
    }
    return vsigmoid(z);
  }
};

template <typename S>
struct Step {
  S r, rain, snow, sp1, mp, mc, melt, mw1, sp2, cc, dT, rp, rc, refr, sp3, mw2, ts_pre, tosoil, mw3;
  S x, xc, wet, infil, rech, sm1, ex_pre, excess, sm2, denom, y, yc, eta, etp, et, sm3_pre, sm3;
  S suz1, perc, suz2, q0_pre, q0m, q0, suz3, q1, suz4, slz1, q2, slz2, qu;
};

template <typename S>
inline S clamp_lo(S x, S lo) { return x < lo ? lo : x; }
template <typename S>
inline S clamp_lohi(S x, S lo, S hi) { return x < lo ? lo : (x > hi ? hi : x); }
template <typename S>
inline S min2(S a, S b) { return b < a ? b : a; }

// torch.minimum backward: to the smaller argument, half each on ties (and NaN)
template <typename S>
inline void min_bwd(S a, S b, S g, S& ga, S& gb) {
  const S half = g * K<S>(0.5), zero = K<S>(0);
  ga += (a < b) ? g : ((a > b) ? zero : half);
  gb += (a > b) ? g : ((a < b) ? zero : half);
}

// lazy (no tape, no gradient): skip pow() when, in every lane, its value is multiplied by an exact
// zero (no water entering the soil, zero PET) or is exactly 1 (full soil): bit-identical outputs.
// sm_floor: the soil-moisture floor after ET, or nullptr for none.
template <typename S>
inline void step_fwd(S P, S T, S PET, S sp, S mw, S sm, S suz, S slz, const S* p, bool gamma,
                     const S* sm_floor, const Net<S>* nn, Step<S>& s, const S* pre = nullptr,
                     bool lazy = false) {
  const S tt = p[TT], cfmax = p[CFMAX], fc = p[FC];
  const S one = K<S>(1), zero = K<S>(0);
  // snow routine
  s.r = (T >= tt) ? one : zero;
  s.rain = P * s.r;
  s.snow = P - s.rain;
  s.sp1 = sp + s.snow;
  s.dT = T - tt;
  s.mp = cfmax * s.dT;
  s.mc = clamp_lo(s.mp, zero);
  s.melt = min2(s.mc, s.sp1);
  s.mw1 = mw + s.melt;
  s.sp2 = s.sp1 - s.melt;
  s.cc = p[CFR] * cfmax;
  s.rp = s.cc * (tt - T);
  s.rc = clamp_lo(s.rp, zero);
  s.refr = min2(s.rc, s.mw1);
  s.sp3 = s.sp2 + s.refr;
  s.mw2 = s.mw1 - s.refr;
  s.ts_pre = s.mw2 - p[CWH] * s.sp3;
  s.tosoil = clamp_lo(s.ts_pre, zero);
  s.mw3 = s.mw2 - s.tosoil;
  // soil routine
  s.x = sm / fc;
  s.xc = clamp_lohi(s.x, K<S>(POW_FLOOR), one);
  s.infil = s.rain + s.tosoil;
  if (pre) s.wet = pre[0];
  else if (nn) {
    if (lazy && all_true<S>(s.infil == zero)) s.wet = zero;  // RECHARGE = 0·wet = 0 either way
    else {
      S u[NN_IN], h1[NN_HMAX], h2[NN_HMAX];
      nn->inputs(fc, p[BETA], sm, s.x, s.infil, u);
      s.wet = nn->wet(u, h1, h2);
    }
  }
  else if (lazy && all_true<S>((s.infil == zero) | (s.xc == one))) s.wet = (s.xc == one) ? one : zero;
  else s.wet = vpow(s.xc, p[BETA]);
  s.rech = s.infil * s.wet;
  s.sm1 = sm + s.infil - s.rech;
  s.ex_pre = s.sm1 - fc;
  s.excess = clamp_lo(s.ex_pre, zero);
  s.sm2 = s.sm1 - s.excess;
  s.denom = p[LP] * fc;
  s.y = s.sm2 / s.denom;
  s.yc = clamp_lohi(s.y, K<S>(POW_FLOOR), one);
  if (!gamma) s.eta = s.yc;
  else if (pre) s.eta = pre[1];
  else if (lazy && all_true<S>((PET == zero) | (s.yc == one))) s.eta = (s.yc == one) ? one : zero;
  else s.eta = vpow(s.yc, p[GAMMA]);
  s.etp = PET * s.eta;
  s.et = min2(s.etp, s.sm2);
  s.sm3_pre = s.sm2 - s.et;
  s.sm3 = sm_floor ? clamp_lo(s.sm3_pre, *sm_floor) : s.sm3_pre;
  // upper and lower zones
  s.suz1 = suz + s.rech + s.excess;
  s.perc = min2(s.suz1, p[PERC]);
  s.suz2 = s.suz1 - s.perc;
  s.q0_pre = s.suz2 - p[UZL];
  s.q0m = clamp_lo(s.q0_pre, zero);
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
inline void step_bwd(S P, S T, S PET, S sm, const S* p, bool gamma, const S* sm_floor, const Net<S>* nn,
                     S lane_mask, const Step<S>& s, const S* go, S* gs, S* gp, S& gP, S& gT, S& gPET,
                     S* gw) {
  const S fc = p[FC], cfmax = p[CFMAX];
  const S zero = K<S>(0), floor_ = K<S>(POW_FLOOR), one = K<S>(1);
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
  const S g_q0pre = (s.q0_pre >= zero) ? g_q0 * p[K0] : zero;
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
  // sm3 = clamp(sm3_pre, sm_floor) (with a floor) ; sm3_pre = sm2 - et ; et = min(etp, sm2) ; etp = PET * eta
  if (sm_floor) g_sm3 = (s.sm3_pre >= *sm_floor) ? g_sm3 : zero;
  S g_sm2 = g_sm3;
  g_et -= g_sm3;
  S g_etp = zero;
  min_bwd(s.etp, s.sm2, g_et, g_etp, g_sm2);
  gPET += g_etp * s.eta;
  const S g_eta = g_etp * PET;
  S g_yc;
  if (gamma) {
    g_yc = g_eta * p[GAMMA] * (s.eta / s.yc);  // yc^(γ-1) = eta / yc, yc ≥ floor > 0
    if (any_nonzero(g_eta)) gp[GAMMA] += g_eta * s.eta * vlog(s.yc);  // skip log on dry/zero-PET days
  } else {
    g_yc = g_eta;
  }
  // yc = clamp(y, floor, 1) ; y = sm2 / denom ; denom = LP * FC
  const S g_y = ((s.y >= floor_) & (s.y <= one)) ? g_yc : zero;
  g_sm2 += g_y / s.denom;
  const S g_denom = -g_y * s.sm2 / (s.denom * s.denom);
  gp[LP] += g_denom * fc;
  gp[FC] += g_denom * p[LP];
  // sm2 = sm1 - excess ; excess = clamp(ex_pre, 0) ; ex_pre = sm1 - FC
  S g_sm1 = g_sm2;
  g_excess -= g_sm2;
  const S g_expre = (s.ex_pre >= zero) ? g_excess : zero;
  g_sm1 += g_expre;
  gp[FC] -= g_expre;
  // sm1 = sm + infil - rech ; rech = infil * wet ; wet = xc ^ BETA
  S g_sm = g_sm1;
  S g_infil = g_sm1;
  g_rech -= g_sm1;
  g_infil += g_rech * s.wet;
  const S g_wet = g_rech * s.infil;
  if (nn) {
    // wet = sigmoid(z): recompute the hidden layers, then back through the network. The lanes
    // of a partial group that repeat its first component carry no adjoint into the weights.
    const int H = nn->H;
    S u[NN_IN], h1[NN_HMAX], h2[NN_HMAX], g_h1[NN_HMAX], g_u[NN_IN];
    nn->inputs(fc, p[BETA], sm, s.x, s.infil, u);
    nn->wet(u, h1, h2);
    const S g_z = g_wet * s.wet * (one - s.wet) * lane_mask;
    S* gW1 = gw + NN_SCALES;
    S* gb1 = gW1 + H * NN_IN;
    S* gW2 = gb1 + H;
    S* gb2 = gW2 + H * H;
    S* gW3 = gb2 + H;
    gW3[H] += g_z;  // b3
    for (int j = 0; j < H; ++j) g_h1[j] = zero;
    for (int k = 0; k < H; ++k) {
      gW3[k] += g_z * h2[k];
      const S g_a2 = g_z * K<S>(nn->W3()[k]) * (one - h2[k] * h2[k]);
      gb2[k] += g_a2;
      const typename Elem<S>::E* w2 = nn->W2() + k * H;
      S* gw2 = gW2 + k * H;
      for (int j = 0; j < H; ++j) {
        gw2[j] += g_a2 * h1[j];
        g_h1[j] += g_a2 * K<S>(w2[j]);
      }
    }
    for (int i = 0; i < NN_IN; ++i) g_u[i] = zero;
    for (int j = 0; j < H; ++j) {
      const S g_a1 = g_h1[j] * (one - h1[j] * h1[j]);
      gb1[j] += g_a1;
      for (int i = 0; i < NN_IN; ++i) {
        gW1[j * NN_IN + i] += g_a1 * u[i];
        g_u[i] += g_a1 * K<S>(nn->W1()[j * NN_IN + i]);
      }
    }
    // u = (FC·s0, BETA·s1, SM·s2, SM/FC, log1p(infil)·s3)
    gp[FC] += g_u[0] * K<S>(nn->w[0]);
    gp[BETA] += g_u[1] * K<S>(nn->w[1]);
    g_sm += g_u[2] * K<S>(nn->w[2]) + g_u[3] / fc;
    gp[FC] -= g_u[3] * sm / (fc * fc);
    g_infil += g_u[4] * K<S>(nn->w[3]) / (one + s.infil);
  } else {
    const S g_xc = g_wet * p[BETA] * (s.wet / s.xc);  // xc^(β-1) = wet / xc, xc ≥ floor > 0
    if (any_nonzero(g_wet)) gp[BETA] += g_wet * s.wet * vlog(s.xc);  // skip log when no water enters
    // xc = clamp(x, floor, 1) ; x = sm / FC
    const S g_x = ((s.x >= floor_) & (s.x <= one)) ? g_xc : zero;
    g_sm += g_x / fc;
    gp[FC] -= g_x * sm / (fc * fc);
  }
  // infil = rain + tosoil
  g_rain += g_infil;
  g_tosoil += g_infil;
  // mw3 = mw2 - tosoil ; tosoil = clamp(ts_pre, 0) ; ts_pre = mw2 - CWH * sp3
  S g_mw2 = g_mw3;
  g_tosoil -= g_mw3;
  const S g_tspre = (s.ts_pre >= zero) ? g_tosoil : zero;
  g_mw2 += g_tspre;
  gp[CWH] -= g_tspre * s.sp3;
  g_sp3 -= g_tspre * p[CWH];
  // mw2 = mw1 - refr ; sp3 = sp2 + refr ; refr = min(rc, mw1) ; rc = clamp(rp, 0)
  S g_mw1 = g_mw2;
  g_refr -= g_mw2;
  const S g_sp2 = g_sp3;
  g_refr += g_sp3;
  S g_rc = zero;
  min_bwd(s.rc, s.mw1, g_refr, g_rc, g_mw1);
  const S g_rp = (s.rp >= zero) ? g_rc : zero;
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
  S g_mc = zero;
  min_bwd(s.mc, s.sp1, g_melt, g_mc, g_sp1);
  const S g_mp = (s.mp >= zero) ? g_mc : zero;
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

// Loop order: basins in parallel; within a basin, time outside and the lane groups of W
// components inside, so the groups' independent dependency chains overlap in the CPU and the
// component mean of a day is one vector sum and one horizontal sum. Static parameters stay in
// registers/L1 (time stride 0); each group's tape is contiguous in time.
template <typename E>
void forward(int64_t nt, int64_t nb, int64_t nm, const E* P, const E* T, const E* PET,
             const E* const* par, const int64_t* pstride, int gamma, E sm_floor, const E* nnw, int nnh,
             const E* state0, E* out, int mean_out, E* state_final, E* saved, int nthreads) {
  using V = typename Lanes<E>::V;
  constexpr int W = Lanes<E>::W;
  const int npar = gamma ? NP : NP - 1;
  const int64_t ng = (nm + W - 1) / W;
  const int last_n = (int)(nm - (ng - 1) * W);
  const E inv_nm = E(1) / E(nm);
  const V floor_v = K<V>(sm_floor);
  const V* floor_p = sm_floor > 0 ? &floor_v : nullptr;
  const Net<V> net{nnw, nnh};
  const Net<V>* nn = nnw ? &net : nullptr;
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t b = 0; b < nb; ++b) {
    std::vector<V> pv(ng * NP, V{}), st(ng * NS);
    V last_mask = K<V>(0);
    for (int i = 0; i < last_n; ++i) last_mask[i] = 1;
    for (int64_t g = 0; g < ng; ++g) {
      const int n = g == ng - 1 ? last_n : W;
      const int64_t off = b * nm + g * W;
      for (int i = 0; i < npar; ++i) pv[g * NP + i] = load<V>(par[i] + off, n);  // static ones stay
      for (int k = 0; k < NS; ++k) st[g * NS + k] = load<V>(state0 + k * nb * nm + off, n);
    }
    E* tape_b = saved ? saved + b * ng * nt * NSAVE * W : nullptr;
    V o[NO], osum[NO];
    Step<V> s;
    for (int64_t t = 0; t < nt; ++t) {
      const V Pv = K<V>(P[b * nt + t]), Tv = K<V>(T[b * nt + t]), PETv = K<V>(PET[b * nt + t]);
      for (int k = 0; k < NO; ++k) osum[k] = K<V>(0);
      for (int64_t g = 0; g < ng; ++g) {
        const int n = g == ng - 1 ? last_n : W;
        const int64_t off = b * nm + g * W;
        V* p = &pv[g * NP];
        V* sg = &st[g * NS];
        for (int i = 0; i < npar; ++i)
          if (pstride[i]) p[i] = load<V>(par[i] + t * pstride[i] + off, n);
        step_fwd<V>(Pv, Tv, PETv, sg[0], sg[1], sg[2], sg[3], sg[4], p, gamma != 0, floor_p, nn, s, nullptr,
                    tape_b == nullptr);
        if (tape_b) {
          E* sv = tape_b + (g * nt + t) * NSAVE * W;
          for (int k = 0; k < NS; ++k) std::memcpy(sv + k * W, &sg[k], sizeof(V));
          std::memcpy(sv + NS * W, &s.wet, sizeof(V));
          std::memcpy(sv + (NS + 1) * W, &s.eta, sizeof(V));
        }
        outputs_of(s, o);
        for (int k = 0; k < NS; ++k) sg[k] = o[k];
        if (mean_out) {
          if (n == W)
            for (int k = 0; k < NO; ++k) osum[k] += o[k];
          else
            for (int k = 0; k < NO; ++k) osum[k] += o[k] * last_mask;
        } else {
          for (int k = 0; k < NO; ++k)
            for (int i = 0; i < n; ++i) out[((k * nb + b) * nm + g * W + i) * nt + t] = o[k][i];
        }
      }
      if (mean_out)
        for (int k = 0; k < NO; ++k) out[(k * nb + b) * nt + t] = hsum(osum[k], W) * inv_nm;
    }
    for (int64_t g = 0; g < ng; ++g) {
      const int n = g == ng - 1 ? last_n : W;
      for (int k = 0; k < NS; ++k) store<V>(state_final + k * nb * nm + b * nm + g * W, st[g * NS + k], n);
    }
  }
}

template <typename E>
void backward(int64_t nt, int64_t nb, int64_t nm, const E* P, const E* T, const E* PET,
              const E* const* par, const int64_t* pstride, int gamma, E sm_floor, const E* nnw, int nnh,
              const E* saved, const E* g_out, int mean_out, const E* g_final, E* gP, E* gT, E* gPET,
              E* const* gpar, E* g_state0, E* gnn, int nthreads) {
  using V = typename Lanes<E>::V;
  constexpr int W = Lanes<E>::W;
  const int npar = gamma ? NP : NP - 1;
  const int64_t ng = (nm + W - 1) / W;
  const int last_n = (int)(nm - (ng - 1) * W);
  const E inv_nm = E(1) / E(nm);
  const V floor_v = K<V>(sm_floor);
  const V* floor_p = sm_floor > 0 ? &floor_v : nullptr;
  const Net<V> net{nnw, nnh};
  const Net<V>* nn = nnw ? &net : nullptr;
  const int nw = nn ? net.size() : 0;
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t b = 0; b < nb; ++b) {
    std::vector<V> pv(ng * NP, V{}), carry(ng * NS), gstatic(ng * NP, V{}), gw(nw, V{});
    V last_mask = K<V>(0);
    for (int i = 0; i < last_n; ++i) last_mask[i] = 1;
    for (int64_t g = 0; g < ng; ++g) {
      const int n = g == ng - 1 ? last_n : W;
      const int64_t off = b * nm + g * W;
      for (int i = 0; i < npar; ++i) pv[g * NP + i] = load<V>(par[i] + off, n);
      // adjoint of the state leaving the current day
      for (int k = 0; k < NS; ++k)
        carry[g * NS + k] = g_final ? load<V>(g_final + k * nb * nm + off, n) : K<V>(0);
    }
    const E* tape_b = saved + b * ng * nt * NSAVE * W;
    V go[NO], gs[NS], gp[NP], gmean[NO];
    Step<V> s;
    for (int64_t t = nt - 1; t >= 0; --t) {
      const V Pv = K<V>(P[b * nt + t]), Tv = K<V>(T[b * nt + t]), PETv = K<V>(PET[b * nt + t]);
      if (mean_out)
        for (int k = 0; k < NO; ++k) gmean[k] = K<V>(g_out[(k * nb + b) * nt + t] * inv_nm);
      V gPs = K<V>(0), gTs = K<V>(0), gPETs = K<V>(0);
      for (int64_t g = 0; g < ng; ++g) {
        const int n = g == ng - 1 ? last_n : W;
        const int64_t off = b * nm + g * W;
        V* p = &pv[g * NP];
        for (int i = 0; i < npar; ++i)
          if (pstride[i]) p[i] = load<V>(par[i] + t * pstride[i] + off, n);
        V sv[NSAVE];
        std::memcpy(sv, tape_b + (g * nt + t) * NSAVE * W, sizeof(sv));
        const V pre[2] = {sv[NS], sv[NS + 1]};
        step_fwd<V>(Pv, Tv, PETv, sv[0], sv[1], sv[2], sv[3], sv[4], p, gamma != 0, floor_p, nn, s, pre);
        if (mean_out)
          for (int k = 0; k < NO; ++k) go[k] = gmean[k];
        else
          for (int k = 0; k < NO; ++k) {
            const E* src = g_out + ((k * nb + b) * nm + g * W) * nt + t;
            for (int i = 0; i < W; ++i) go[k][i] = src[(i < n ? i : 0) * nt];
          }
        for (int k = 0; k < NS; ++k) go[k] += carry[g * NS + k];
        for (int i = 0; i < NP; ++i) gp[i] = K<V>(0);
        V gPt = K<V>(0), gTt = K<V>(0), gPETt = K<V>(0);
        step_bwd<V>(Pv, Tv, PETv, sv[2], p, gamma != 0, floor_p, nn, n == W ? K<V>(1) : last_mask, s, go,
                    gs, gp, gPt, gTt, gPETt, gw.data());
        if (n == W) {
          gPs += gPt; gTs += gTt; gPETs += gPETt;
        } else {
          gPs += gPt * last_mask; gTs += gTt * last_mask; gPETs += gPETt * last_mask;
        }
        for (int k = 0; k < NS; ++k) carry[g * NS + k] = gs[k];
        for (int i = 0; i < npar; ++i) {
          if (pstride[i]) {
            E* dst = gpar[i] + t * pstride[i] + off;
            store<V>(dst, load<V>(dst, n) + gp[i], n);
          } else {
            gstatic[g * NP + i] += gp[i];
          }
        }
      }
      gP[b * nt + t] += hsum(gPs, W);
      gT[b * nt + t] += hsum(gTs, W);
      gPET[b * nt + t] += hsum(gPETs, W);
    }
    for (int64_t g = 0; g < ng; ++g) {
      const int n = g == ng - 1 ? last_n : W;
      const int64_t off = b * nm + g * W;
      for (int i = 0; i < npar; ++i)
        if (!pstride[i]) store<V>(gpar[i] + off, load<V>(gpar[i] + off, n) + gstatic[g * NP + i], n);
      for (int k = 0; k < NS; ++k) store<V>(g_state0 + k * nb * nm + off, carry[g * NS + k], n);
    }
    for (int k = 0; k < nw; ++k) gnn[b * nw + k] = hsum(gw[k], W);  // partial lanes carry zero
  }
}

}  // namespace

extern "C" {

int hbv_lanes_f32() { return Lanes<float>::W; }
int hbv_lanes_f64() { return Lanes<double>::W; }
const char* hbv_param_names() { return "BETA,FC,K0,K1,K2,LP,PERC,UZL,TT,CFMAX,CFR,CWH,GAMMA"; }
int hbv_nn_hmax() { return NN_HMAX; }
const char* hbv_output_names() {
  return "SNOWPACK,MELTWATER,SM,SUZ,SLZ,RAIN,SNOW,MELT,REFREEZE,TOSOIL,RECHARGE,EXCESS,ET,PERC,Q0,Q1,Q2,Q_unrouted";
}

#define HBV_EXPORT(S, SUFFIX)                                                                       \
  void hbv_forward_##SUFFIX(int64_t nt, int64_t nb, int64_t nm, const S* P, const S* T, const S* PET, \
                            const S* const* par, const int64_t* pstride, int gamma, S sm_floor,     \
                            const S* nnw, int nnh, const S* state0, S* out, int mean_out,           \
                            S* state_final, S* saved, int nthreads) {                               \
    forward<S>(nt, nb, nm, P, T, PET, par, pstride, gamma, sm_floor, nnw, nnh, state0, out, mean_out, \
               state_final, saved, nthreads);                                                       \
  }                                                                                                 \
  void hbv_backward_##SUFFIX(int64_t nt, int64_t nb, int64_t nm, const S* P, const S* T, const S* PET, \
                             const S* const* par, const int64_t* pstride, int gamma, S sm_floor,    \
                             const S* nnw, int nnh, const S* saved, const S* g_out, int mean_out,   \
                             const S* g_final, S* gP, S* gT, S* gPET, S* const* gpar, S* g_state0,  \
                             S* gnn, int nthreads) {                                                \
    backward<S>(nt, nb, nm, P, T, PET, par, pstride, gamma, sm_floor, nnw, nnh, saved, g_out, mean_out, \
                g_final, gP, gT, gPET, gpar, g_state0, gnn, nthreads);                              \
  }

HBV_EXPORT(float, f32)
HBV_EXPORT(double, f64)

}  // extern "C"
