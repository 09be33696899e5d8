// Fused LSTMP layer (ELMo's LSTM with projection, cell clip and projection clip) as a
// Paddle custom CPU operator: the whole time loop of one layer, both directions, forward
// and backward (BPTT), in C++. GEMMs go to the MKL that ships with Paddle's CPU wheel
// (cblas_sgemm of libmklml_intel.so, declared here: the wheel has no cblas header).
// Built and loaded by paddlepalm/utils/fused_lstmp.py; the reference semantics are
// paddlepalm/utils/lstmp.py (lstmp_layer_unfused).
//
// The input projections (X WIn + Bias, all time steps in one GEMM) are part of the op, so their
// gradients are too: dX, dWIn and dBias come from the saved gate gradients after the time loop,
// as do dWRec and dWProj (one GEMM each over all B*T rows instead of one per time step).
//
// Shapes (D directions, B batch, T steps, In input size, H cell size, P projection size):
//   X [D,B,T,In], WIn [D,In,4H], Bias [D,4H]; gate order (candidate, input, forget, output)
//   WRec [D,P,4H], WProj [D,H,P], H0 [D,B,P], C0 [D,B,H]
//   Hidden [D,B,T,P]  clipped projections h_t (the layer output)
//   Act [D,T,B,4H]    activated gates (tanh candidate, sigmoid i/f/o), saved for backward
//   Cell [D,T,B,H]    clipped cells c_t, saved for backward
// Clip masks are recovered from the saved clipped values (|v| < clip), as paddle.clip's
// gradient passes where min < x < max.
#include <cmath>
#include <cstring>
#include <vector>

#include "paddle/extension.h"

extern "C" void cblas_sgemm(int layout, int trans_a, int trans_b, int m, int n, int k, float alpha,
                            const float* a, int lda, const float* b, int ldb, float beta, float* c,
                            int ldc);

extern "C" float* cblas_sgemm_alloc(int identifier, int m, int n, int k);
extern "C" void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                                 const float* src, int ld, float* dest);
extern "C" void cblas_sgemm_compute(int layout, int trans_a, int trans_b, int m, int n, int k, const float* a,
                                    int lda, const float* b, int ldb, float beta, float* c, int ldc);
extern "C" void cblas_sgemm_free(float* dest);

namespace {

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;

// The B operand of the per-time-step GEMMs (c = a op(B) + beta c, M rows of a), packed once per
// direction into MKL's internal layout (cblas_sgemm_pack): the same weight is multiplied at every
// step, and a plain cblas_sgemm repacks it each time.
class PackedB {
 public:
  PackedB(bool tb, int m, int n, int k, const float* b, int ldb)
      : m_(m), n_(n), k_(k), buf_(cblas_sgemm_alloc(kBMatrix, m, n, k)) {
    PD_CHECK(buf_ != nullptr, "palm_lstmp: cblas_sgemm_alloc failed");
    cblas_sgemm_pack(kRowMajor, kBMatrix, tb ? kTrans : kNoTrans, m, n, k, 1.f, b, ldb, buf_);
  }
  PackedB(const PackedB&) = delete;
  PackedB& operator=(const PackedB&) = delete;
  ~PackedB() { cblas_sgemm_free(buf_); }
  void Apply(const float* a, int lda, float beta, float* c, int ldc) const {
    cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, m_, n_, k_, a, lda, buf_, n_, beta, c, ldc);
  }

 private:
  int m_, n_, k_;
  float* buf_;
};

// sigmoid(x) = (1 + tanh(x / 2)) / 2: gcc vectorizes tanhf (glibc libmvec), not this expf
inline float Sigmoid(float x) { return 0.5f + 0.5f * std::tanh(0.5f * x); }

inline float Clip(float x, float bound) {
  return bound > 0.f ? (x < -bound ? -bound : (x > bound ? bound : x)) : x;
}

inline bool Inside(float x, float bound) { return bound <= 0.f || (x > -bound && x < bound); }

// Uninitialized float scratch from Paddle's CPU allocator, which hands back blocks freed by earlier
// calls; a std::vector of tens of MB zero-fills freshly mapped pages on every call.
class Scratch {
 public:
  explicit Scratch(size_t n)
      : t_(paddle::empty({static_cast<int64_t>(n ? n : 1)}, paddle::DataType::FLOAT32, paddle::CPUPlace())) {}
  float* data() { return t_.data<float>(); }

 private:
  paddle::Tensor t_;
};

void Gemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb,
          float beta, float* c, int ldc) {
  cblas_sgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, m, n, k, 1.f, a, lda, b,
              ldb, beta, c, ldc);
}

// One row: activate the gates in place, c = clip(f * c_prev + i * cand), m = o * tanh(c).
// Separate simple loops over restrict pointers, so that gcc vectorizes them (tanhf via libmvec).
void CellForward(float* __restrict g, const float* __restrict c_prev, float* __restrict c, float* __restrict m,
                 int H, float cell_clip) {
#pragma omp simd
  for (int j = 0; j < H; ++j) g[j] = std::tanh(g[j]);
#pragma omp simd
  for (int j = H; j < 4 * H; ++j) g[j] = Sigmoid(g[j]);
#pragma omp simd
  for (int j = 0; j < H; ++j) c[j] = Clip(g[2 * H + j] * c_prev[j] + g[H + j] * g[j], cell_clip);
#pragma omp simd
  for (int j = 0; j < H; ++j) m[j] = g[3 * H + j] * std::tanh(c[j]);
}

void CheckInputs(const paddle::Tensor& x, const paddle::Tensor& w_in, const paddle::Tensor& bias,
                 const paddle::Tensor& w_rec, const paddle::Tensor& w_proj, const paddle::Tensor& h0,
                 const paddle::Tensor& c0) {
  for (const paddle::Tensor* t : {&x, &w_in, &bias, &w_rec, &w_proj, &h0, &c0}) {
    PD_CHECK(t->is_cpu(), "palm_lstmp: CPU tensors only");
    PD_CHECK(t->dtype() == paddle::DataType::FLOAT32, "palm_lstmp: float32 only");
  }
  PD_CHECK(x.shape().size() == 4 && w_in.shape().size() == 3 && bias.shape().size() == 2 &&
               w_rec.shape().size() == 3 && w_proj.shape().size() == 3,
           "palm_lstmp: X [D,B,T,In], WIn [D,In,4H], Bias [D,4H], WRec [D,P,4H], WProj [D,H,P]");
  const int64_t h4 = w_in.shape()[2];
  PD_CHECK(w_in.shape()[1] == x.shape()[3] && bias.shape()[1] == h4 && w_rec.shape()[2] == h4 &&
               w_proj.shape()[1] * 4 == h4 && w_rec.shape()[1] == w_proj.shape()[2],
           "palm_lstmp: inconsistent weight shapes");
}

}  // namespace

std::vector<paddle::Tensor> LstmpForward(const paddle::Tensor& x, const paddle::Tensor& w_in,
                                         const paddle::Tensor& bias, const paddle::Tensor& w_rec,
                                         const paddle::Tensor& w_proj, const paddle::Tensor& h0,
                                         const paddle::Tensor& c0, float cell_clip, float proj_clip) {
  CheckInputs(x, w_in, bias, w_rec, w_proj, h0, c0);
  const int D = x.shape()[0], B = x.shape()[1], T = x.shape()[2], In = x.shape()[3];
  const int H4 = w_in.shape()[2], H = H4 / 4, P = w_rec.shape()[1];
  auto hidden = paddle::empty({D, B, T, P}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto act = paddle::empty({D, T, B, H4}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto cell = paddle::empty({D, T, B, H}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  Scratch gx(static_cast<size_t>(B) * T * H4);  // one direction's X WIn, rows (b, t)
  float* hid_p = hidden.data<float>();
  float* act_p = act.data<float>();
  float* cell_p = cell.data<float>();
  std::vector<float> m(static_cast<size_t>(B) * H);
  for (int d = 0; d < D; ++d) {
    const float* wr = w_rec.data<float>() + static_cast<size_t>(d) * P * H4;
    const float* wp = w_proj.data<float>() + static_cast<size_t>(d) * H * P;
    const PackedB rec(false, B, H4, P, wr, H4);  // h_prev WRec at every step
    float* hid_d = hid_p + static_cast<size_t>(d) * B * T * P;
    Gemm(false, false, B * T, H4, In, x.data<float>() + static_cast<size_t>(d) * B * T * In, In,
         w_in.data<float>() + static_cast<size_t>(d) * In * H4, H4, 0.f, gx.data(), H4);
    const float* bias_d = bias.data<float>() + static_cast<size_t>(d) * H4;
    for (int t = 0; t < T; ++t)  // act[d, t, b] = X WIn (row b*T + t) + Bias, time-major
      for (int b = 0; b < B; ++b) {
        float* __restrict dst = act_p + ((static_cast<size_t>(d) * T + t) * B + b) * H4;
        const float* __restrict src = gx.data() + (static_cast<size_t>(b) * T + t) * H4;
#pragma omp simd
        for (int j = 0; j < H4; ++j) dst[j] = src[j] + bias_d[j];
      }
    for (int t = 0; t < T; ++t) {
      float* g = act_p + (static_cast<size_t>(d) * T + t) * B * H4;
      float* c = cell_p + (static_cast<size_t>(d) * T + t) * B * H;
      const float* c_prev = t ? c - static_cast<size_t>(B) * H : c0.data<float>() + static_cast<size_t>(d) * B * H;
      if (t)
        rec.Apply(hid_d + static_cast<size_t>(t - 1) * P, T * P, 1.f, g, H4);
      else
        rec.Apply(h0.data<float>() + static_cast<size_t>(d) * B * P, P, 1.f, g, H4);
      for (int b = 0; b < B; ++b)
        CellForward(g + static_cast<size_t>(b) * H4, c_prev + static_cast<size_t>(b) * H,
                    c + static_cast<size_t>(b) * H, m.data() + static_cast<size_t>(b) * H, H, cell_clip);
      float* h_t = hid_d + static_cast<size_t>(t) * P;
      Gemm(false, false, B, P, H, m.data(), H, wp, P, 0.f, h_t, T * P);
      if (proj_clip > 0.f)
        for (int b = 0; b < B; ++b) {
          float* hb = h_t + static_cast<size_t>(b) * T * P;
          for (int j = 0; j < P; ++j) hb[j] = Clip(hb[j], proj_clip);
        }
    }
  }
  return {hidden, act, cell};
}

// dX, dWIn, dBias, dWRec and dWProj of one direction from its gate gradients dG [B*T, 4H]
// (rows (b, t)), the projection gradients dP and outputs M [T*B, H] saved by the time loop.
void WeightGradients(int B, int T, int In, int H4, int H, int P, const float* x_d, const float* w_in_d,
                     const float* hid_d, const float* h0_d, const float* dg, const float* m_all,
                     const float* dp_all, float* h_prev, float* dx_d, float* dwin_d, float* dbias_d,
                     float* dwr, float* dwp) {
  for (int b = 0; b < B; ++b)  // h_prev row (b, t): h_{t-1} of row b, h0 at t = 0
    for (int t = 0; t < T; ++t)
      std::memcpy(h_prev + (static_cast<size_t>(b) * T + t) * P,
                  t ? hid_d + (static_cast<size_t>(b) * T + t - 1) * P : h0_d + static_cast<size_t>(b) * P,
                  sizeof(float) * P);
  const int N = B * T;
  Gemm(true, false, P, H4, N, h_prev, P, dg, H4, 0.f, dwr, H4);    // dWRec = h_prev^T dG
  Gemm(true, false, H, P, N, m_all, H, dp_all, P, 0.f, dwp, P);     // dWProj = M^T dP
  Gemm(false, true, N, In, H4, dg, H4, w_in_d, H4, 0.f, dx_d, In);  // dX = dG WIn^T
  Gemm(true, false, In, H4, N, x_d, In, dg, H4, 0.f, dwin_d, H4);   // dWIn = X^T dG
  std::memset(dbias_d, 0, sizeof(float) * H4);
  for (int r = 0; r < N; ++r) {
    const float* __restrict row = dg + static_cast<size_t>(r) * H4;
#pragma omp simd
    for (int j = 0; j < H4; ++j) dbias_d[j] += row[j];
  }
}

std::vector<paddle::Tensor> LstmpBackward(const paddle::Tensor& x, const paddle::Tensor& w_in,
                                          const paddle::Tensor& bias, const paddle::Tensor& w_rec,
                                          const paddle::Tensor& w_proj, const paddle::Tensor& h0,
                                          const paddle::Tensor& c0, const paddle::Tensor& hidden,
                                          const paddle::Tensor& act, const paddle::Tensor& cell,
                                          const paddle::Tensor& d_hidden, float cell_clip, float proj_clip) {
  const int D = x.shape()[0], B = x.shape()[1], T = x.shape()[2], In = x.shape()[3];
  const int H4 = w_in.shape()[2], H = H4 / 4, P = w_rec.shape()[1];
  auto d_x = paddle::empty({D, B, T, In}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto d_win = paddle::empty({D, In, H4}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto d_bias = paddle::empty({D, H4}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto d_wrec = paddle::empty({D, P, H4}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto d_wproj = paddle::empty({D, H, P}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto d_h0 = paddle::empty({D, B, P}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto d_c0 = paddle::empty({D, B, H}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* hid_p = hidden.data<float>();
  const float* act_p = act.data<float>();
  const float* cell_p = cell.data<float>();
  const float* dh_p = d_hidden.data<float>();
  Scratch dgx(static_cast<size_t>(B) * T * H4), dp_all(static_cast<size_t>(T) * B * P),
      m_all(static_cast<size_t>(T) * B * H), h_prev(static_cast<size_t>(B) * T * P);
  std::vector<float> tc(static_cast<size_t>(B) * H), dm(static_cast<size_t>(B) * H);
  for (int d = 0; d < D; ++d) {
    const float* wr = w_rec.data<float>() + static_cast<size_t>(d) * P * H4;
    const float* wp = w_proj.data<float>() + static_cast<size_t>(d) * H * P;
    const PackedB proj_t(true, B, H, P, wp, P), rec_t(true, B, P, H4, wr, H4);  // WProj^T, WRec^T
    float* dwr = d_wrec.data<float>() + static_cast<size_t>(d) * P * H4;
    float* dwp = d_wproj.data<float>() + static_cast<size_t>(d) * H * P;
    float* dh_next = d_h0.data<float>() + static_cast<size_t>(d) * B * P;  // ends as dL/dh0
    float* dc_next = d_c0.data<float>() + static_cast<size_t>(d) * B * H;  // ends as dL/dc0
    std::memset(dh_next, 0, sizeof(float) * B * P);
    std::memset(dc_next, 0, sizeof(float) * B * H);
    const float* hid_d = hid_p + static_cast<size_t>(d) * B * T * P;
    float* dgx_d = dgx.data();
    for (int t = T - 1; t >= 0; --t) {
      float* dp = dp_all.data() + static_cast<size_t>(t) * B * P;
      float* m = m_all.data() + static_cast<size_t>(t) * B * H;
      const float* a = act_p + (static_cast<size_t>(d) * T + t) * B * H4;
      const float* c = cell_p + (static_cast<size_t>(d) * T + t) * B * H;
      const float* c_prev = t ? c - static_cast<size_t>(B) * H : c0.data<float>() + static_cast<size_t>(d) * B * H;
      for (int b = 0; b < B; ++b) {
        const size_t off = (static_cast<size_t>(d) * B + b) * T * P + static_cast<size_t>(t) * P;
        const float* hb = hid_p + off;
        const float* gb = dh_p + off;
        float* dpb = dp + static_cast<size_t>(b) * P;
        const float* dnb = dh_next + static_cast<size_t>(b) * P;
        for (int j = 0; j < P; ++j) dpb[j] = Inside(hb[j], proj_clip) ? gb[j] + dnb[j] : 0.f;
        const float* ab = a + static_cast<size_t>(b) * H4;
        const float* cb = c + static_cast<size_t>(b) * H;
        float* tcb = tc.data() + static_cast<size_t>(b) * H;
        float* mb = m + static_cast<size_t>(b) * H;
#pragma omp simd
        for (int j = 0; j < H; ++j) {
          tcb[j] = std::tanh(cb[j]);
          mb[j] = ab[3 * H + j] * tcb[j];
        }
      }
      proj_t.Apply(dp, P, 0.f, dm.data(), H);                                    // dm = dp WProj^T
      float* dg = dgx_d + static_cast<size_t>(t) * H4;                        // rows strided T*4H
      for (int b = 0; b < B; ++b) {
        const float* ab = a + static_cast<size_t>(b) * H4;
        const float* cb = c + static_cast<size_t>(b) * H;
        const float* cpb = c_prev + static_cast<size_t>(b) * H;
        const float* tcb = tc.data() + static_cast<size_t>(b) * H;
        const float* dmb = dm.data() + static_cast<size_t>(b) * H;
        float* dcn = dc_next + static_cast<size_t>(b) * H;
        float* dgb = dg + static_cast<size_t>(b) * T * H4;
#pragma omp simd
        for (int j = 0; j < H; ++j) {
          const float cand = ab[j], ig = ab[H + j], fg = ab[2 * H + j], og = ab[3 * H + j];
          float dc = dmb[j] * og * (1.f - tcb[j] * tcb[j]) + dcn[j];
          dc = Inside(cb[j], cell_clip) ? dc : 0.f;
          dgb[j] = dc * ig * (1.f - cand * cand);
          dgb[H + j] = dc * cand * ig * (1.f - ig);
          dgb[2 * H + j] = dc * cpb[j] * fg * (1.f - fg);
          dgb[3 * H + j] = dmb[j] * tcb[j] * og * (1.f - og);
          dcn[j] = dc * fg;
        }
      }
      rec_t.Apply(dg, T * H4, 0.f, dh_next, P);                                  // dh = dG WRec^T
    }
    WeightGradients(B, T, In, H4, H, P, x.data<float>() + static_cast<size_t>(d) * B * T * In,
                    w_in.data<float>() + static_cast<size_t>(d) * In * H4, hid_d,
                    h0.data<float>() + static_cast<size_t>(d) * B * P, dgx_d, m_all.data(), dp_all.data(),
                    h_prev.data(), d_x.data<float>() + static_cast<size_t>(d) * B * T * In,
                    d_win.data<float>() + static_cast<size_t>(d) * In * H4,
                    d_bias.data<float>() + static_cast<size_t>(d) * H4, dwr, dwp);
  }
  return {d_x, d_win, d_bias, d_wrec, d_wproj, d_h0, d_c0};
}

std::vector<std::vector<int64_t>> LstmpInferShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w_in,
                                                  const std::vector<int64_t>& bias, const std::vector<int64_t>& w_rec,
                                                  const std::vector<int64_t>& w_proj, const std::vector<int64_t>& h0,
                                                  const std::vector<int64_t>& c0) {
  return {{x[0], x[1], x[2], w_rec[1]}, {x[0], x[2], x[1], w_in[2]}, {x[0], x[2], x[1], w_in[2] / 4}};
}

std::vector<paddle::DataType> LstmpInferDtype(const paddle::DataType& x, const paddle::DataType&,
                                              const paddle::DataType&, const paddle::DataType&,
                                              const paddle::DataType&, const paddle::DataType&,
                                              const paddle::DataType&) {
  return {x, x, x};
}

PD_BUILD_OP(palm_lstmp)
    .Inputs({"X", "WIn", "Bias", "WRec", "WProj", "H0", "C0"})
    .Outputs({"Hidden", "Act", "Cell"})
    .Attrs({"cell_clip: float", "proj_clip: float"})
    .SetKernelFn(PD_KERNEL(LstmpForward))
    .SetInferShapeFn(PD_INFER_SHAPE(LstmpInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(LstmpInferDtype));

PD_BUILD_GRAD_OP(palm_lstmp)
    .Inputs({"X", "WIn", "Bias", "WRec", "WProj", "H0", "C0", "Hidden", "Act", "Cell", paddle::Grad("Hidden")})
    .Outputs({paddle::Grad("X"), paddle::Grad("WIn"), paddle::Grad("Bias"), paddle::Grad("WRec"),
              paddle::Grad("WProj"), paddle::Grad("H0"), paddle::Grad("C0")})
    .Attrs({"cell_clip: float", "proj_clip: float"})
    .SetKernelFn(PD_KERNEL(LstmpBackward));
