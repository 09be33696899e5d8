// Full-vocabulary softmax cross-entropy of an output layer, a block of rows at a time, with its
// gradients computed in the same pass (a Paddle custom CPU operator, no gradient op of its own:
// paddlepalm/utils/fused_softmax.py wires the gradients through a PyLayer).
//
// For each block of R rows the logits X_r W^T + b [R, V] are formed in a reused buffer (the
// [N, V] logits never exist whole), each row's log-sum-exp and loss are taken, and, when asked,
// the buffer is turned into scale * (softmax - onehot) in place and multiplied into the
// gradients: DX_r = G W, DW += G^T X_r, DB += sum of G's rows. GEMMs go to the MKL of Paddle's CPU
// wheel (cblas_sgemm of libmklml_intel.so, declared here: the wheel has no cblas header).
//
// Shapes: X [N, P], W [V, P], B [V], T [N] int64 (class ids in [0, V)).
// Outputs: Loss [N] (per-row negative log-likelihood), DX [N, P], DW [V, P], DB [V]: the gradients
// of grad_scale * sum(Loss); left unwritten when with_grad is false.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "paddle/extension.h"

extern "C" void cblas_sgemm(int layout, int trans_a, int trans_b, int m, int n, int k, float alpha,
                            const float* a, int lda, const float* b, int ldb, float beta, float* c,
                            int ldc);

namespace {

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

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

// Turns one row of logits into exp(logit - max) in place; returns the sum of those, sets *max.
float ExpInPlace(float* __restrict row, int V, float* max) {
  float mx = row[0];
#pragma omp simd reduction(max : mx)
  for (int j = 0; j < V; ++j) mx = std::max(mx, row[j]);
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < V; ++j) {
    row[j] = std::exp(row[j] - mx);
    sum += row[j];
  }
  *max = mx;
  return sum;
}

void CheckInputs(const paddle::Tensor& x, const paddle::Tensor& w, const paddle::Tensor& b,
                 const paddle::Tensor& t) {
  for (const paddle::Tensor* v : {&x, &w, &b}) {
    PD_CHECK(v->is_cpu(), "palm_softmax_ce: CPU tensors only");
    PD_CHECK(v->dtype() == paddle::DataType::FLOAT32, "palm_softmax_ce: float32 only");
  }
  PD_CHECK(t.is_cpu() && t.dtype() == paddle::DataType::INT64, "palm_softmax_ce: int64 targets on CPU");
  PD_CHECK(x.shape().size() == 2 && w.shape().size() == 2 && b.shape().size() == 1 && t.shape().size() == 1,
           "palm_softmax_ce: X [N,P], W [V,P], B [V], T [N]");
  PD_CHECK(x.shape()[1] == w.shape()[1] && b.shape()[0] == w.shape()[0] && t.shape()[0] == x.shape()[0],
           "palm_softmax_ce: inconsistent shapes");
}

}  // namespace

std::vector<paddle::Tensor> SoftmaxCeForward(const paddle::Tensor& x, const paddle::Tensor& w,
                                             const paddle::Tensor& b, const paddle::Tensor& t, bool with_grad,
                                             float grad_scale, int block_rows) {
  CheckInputs(x, w, b, t);
  const int N = x.shape()[0], P = x.shape()[1], V = w.shape()[0];
  const int R = std::max(1, std::min(block_rows, std::max(N, 1)));
  auto loss = paddle::empty({N}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto dx = paddle::empty({N, P}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto dw = paddle::empty({V, P}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto db = paddle::empty({V}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float *xp = x.data<float>(), *wp = w.data<float>(), *bp = b.data<float>();
  const int64_t* tp = t.data<int64_t>();
  float *lp = loss.data<float>(), *dxp = dx.data<float>(), *dwp = dw.data<float>(), *dbp = db.data<float>();
  if (with_grad) {
    std::memset(dwp, 0, sizeof(float) * V * P);
    std::memset(dbp, 0, sizeof(float) * V);
  }
  Scratch buf(static_cast<size_t>(R) * V);
  for (int r0 = 0; r0 < N; r0 += R) {
    const int rows = std::min(R, N - r0);
    for (int r = 0; r < rows; ++r) std::memcpy(buf.data() + static_cast<size_t>(r) * V, bp, sizeof(float) * V);
    Gemm(false, true, rows, V, P, xp + static_cast<size_t>(r0) * P, P, wp, P, 1.f, buf.data(), V);
    for (int r = 0; r < rows; ++r) {
      float* row = buf.data() + static_cast<size_t>(r) * V;
      const int64_t target = tp[r0 + r];
      PD_CHECK(target >= 0 && target < V, "palm_softmax_ce: target id out of range");
      const float true_logit = row[target];
      float mx;
      const float sum = ExpInPlace(row, V, &mx);
      lp[r0 + r] = mx + std::log(sum) - true_logit;
      if (!with_grad) continue;
      const float k = grad_scale / sum;  // row * k = grad_scale * softmax
      float* __restrict out = row;
      float* __restrict dbr = dbp;
#pragma omp simd
      for (int j = 0; j < V; ++j) {
        out[j] *= k;
        dbr[j] += out[j];
      }
      out[target] -= grad_scale;
      dbp[target] -= grad_scale;
    }
    if (!with_grad) continue;
    Gemm(false, false, rows, P, V, buf.data(), V, wp, P, 0.f, dxp + static_cast<size_t>(r0) * P, P);
    Gemm(true, false, V, P, rows, buf.data(), V, xp + static_cast<size_t>(r0) * P, P, 1.f, dwp, P);
  }
  return {loss, dx, dw, db};
}

std::vector<std::vector<int64_t>> SoftmaxCeInferShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                                      const std::vector<int64_t>& b, const std::vector<int64_t>& t) {
  return {{x[0]}, x, w, b};
}

std::vector<paddle::DataType> SoftmaxCeInferDtype(const paddle::DataType& x, const paddle::DataType&,
                                                  const paddle::DataType&, const paddle::DataType&) {
  return {x, x, x, x};
}

PD_BUILD_OP(palm_softmax_ce)
    .Inputs({"X", "W", "B", "T"})
    .Outputs({"Loss", "DX", "DW", "DB"})
    .Attrs({"with_grad: bool", "grad_scale: float", "block_rows: int"})
    .SetKernelFn(PD_KERNEL(SoftmaxCeForward))
    .SetInferShapeFn(PD_INFER_SHAPE(SoftmaxCeInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(SoftmaxCeInferDtype));

// ---------------------------------------------------------------------------------------------
// Sampled softmax (BiLM's num_samples > 0): each row's candidates are its own target and the K
// shared sampled ids S, logits corrected by -log Q (LogQT [N] for the targets, LogQS [K]); a
// sampled id equal to the row's target (an accidental hit) gets the logit -1e9 and no gradient,
// as in paddlepalm/head/bilm.py's reference. Loss [N]; DX [N, P], DW [V, P], DB [V] are the
// gradients of grad_scale * sum(Loss) (DW, DB dense: non-zero on the targets' and S's rows only).

namespace {

constexpr float kHitLogit = -1e9f;

void GatherRows(const float* w, const int64_t* ids, int K, int P, int V, float* out) {
  for (int k = 0; k < K; ++k) {
    PD_CHECK(ids[k] >= 0 && ids[k] < V, "palm_sampled_softmax_ce: sampled id out of range");
    std::memcpy(out + static_cast<size_t>(k) * P, w + static_cast<size_t>(ids[k]) * P, sizeof(float) * P);
  }
}

float Dot(const float* __restrict a, const float* __restrict b, int P) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int j = 0; j < P; ++j) s += a[j] * b[j];
  return s;
}

void Axpy(float alpha, const float* __restrict x, float* __restrict y, int P) {
#pragma omp simd
  for (int j = 0; j < P; ++j) y[j] += alpha * x[j];
}

}  // namespace

std::vector<paddle::Tensor> SampledSoftmaxCeForward(const paddle::Tensor& x, const paddle::Tensor& w,
                                                    const paddle::Tensor& b, const paddle::Tensor& t,
                                                    const paddle::Tensor& s, const paddle::Tensor& log_q_t,
                                                    const paddle::Tensor& log_q_s, bool with_grad,
                                                    float grad_scale) {
  CheckInputs(x, w, b, t);
  PD_CHECK(s.is_cpu() && s.dtype() == paddle::DataType::INT64 && s.shape().size() == 1,
           "palm_sampled_softmax_ce: int64 sampled ids [K] on CPU");
  const int N = x.shape()[0], P = x.shape()[1], V = w.shape()[0], K = s.shape()[0];
  PD_CHECK(log_q_t.numel() == N && log_q_s.numel() == K, "palm_sampled_softmax_ce: LogQT [N], LogQS [K]");
  auto loss = paddle::empty({N}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto dx = paddle::empty({N, P}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto dw = paddle::empty({V, P}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto db = paddle::empty({V}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float *xp = x.data<float>(), *wp = w.data<float>(), *bp = b.data<float>();
  const float *lqt = log_q_t.data<float>(), *lqs = log_q_s.data<float>();
  const int64_t *tp = t.data<int64_t>(), *sp = s.data<int64_t>();
  float *lp = loss.data<float>(), *dxp = dx.data<float>(), *dwp = dw.data<float>(), *dbp = db.data<float>();
  Scratch ws(static_cast<size_t>(K) * P), logits(static_cast<size_t>(N) * K), dws(static_cast<size_t>(K) * P);
  std::vector<float> bs(K), g_true(N), dbs(K, 0.f);
  GatherRows(wp, sp, K, P, V, ws.data());
  for (int k = 0; k < K; ++k) bs[k] = bp[sp[k]] - lqs[k];
  for (int n = 0; n < N; ++n) std::memcpy(logits.data() + static_cast<size_t>(n) * K, bs.data(), sizeof(float) * K);
  if (N > 0 && K > 0) Gemm(false, true, N, K, P, xp, P, ws.data(), P, 1.f, logits.data(), K);
  for (int n = 0; n < N; ++n) {
    const int64_t target = tp[n];
    PD_CHECK(target >= 0 && target < V, "palm_sampled_softmax_ce: target id out of range");
    float* row = logits.data() + static_cast<size_t>(n) * K;
    const float true_logit = Dot(xp + static_cast<size_t>(n) * P, wp + static_cast<size_t>(target) * P, P) +
                             bp[target] - lqt[n];
    for (int k = 0; k < K; ++k)
      if (sp[k] == target) row[k] = kHitLogit;
    float mx = true_logit;
#pragma omp simd reduction(max : mx)
    for (int k = 0; k < K; ++k) mx = std::max(mx, row[k]);
    const float e_true = std::exp(true_logit - mx);
    float sum = e_true;
#pragma omp simd reduction(+ : sum)
    for (int k = 0; k < K; ++k) {
      row[k] = std::exp(row[k] - mx);
      sum += row[k];
    }
    lp[n] = mx + std::log(sum) - true_logit;
    if (!with_grad) continue;
    const float scale = grad_scale / sum;
#pragma omp simd
    for (int k = 0; k < K; ++k) row[k] *= scale;
    for (int k = 0; k < K; ++k)
      if (sp[k] == target) row[k] = 0.f;  // the hit's logit is a constant: no gradient
    g_true[n] = e_true * scale - grad_scale;
  }
  if (!with_grad) return {loss, dx, dw, db};
  std::memset(dwp, 0, sizeof(float) * V * P);
  std::memset(dbp, 0, sizeof(float) * V);
  if (K > 0) {
    Gemm(false, false, N, P, K, logits.data(), K, ws.data(), P, 0.f, dxp, P);  // dX = G Ws
    Gemm(true, false, K, P, N, logits.data(), K, xp, P, 0.f, dws.data(), P);   // dWs = G^T X
  } else {
    std::memset(dxp, 0, sizeof(float) * N * P);
  }
  for (int n = 0; n < N; ++n) {
    const float* row = logits.data() + static_cast<size_t>(n) * K;
#pragma omp simd
    for (int k = 0; k < K; ++k) dbs[k] += row[k];
    const int64_t target = tp[n];
    Axpy(g_true[n], wp + static_cast<size_t>(target) * P, dxp + static_cast<size_t>(n) * P, P);
    Axpy(g_true[n], xp + static_cast<size_t>(n) * P, dwp + static_cast<size_t>(target) * P, P);
    dbp[target] += g_true[n];
  }
  for (int k = 0; k < K; ++k) {
    Axpy(1.f, dws.data() + static_cast<size_t>(k) * P, dwp + static_cast<size_t>(sp[k]) * P, P);
    dbp[sp[k]] += dbs[k];
  }
  return {loss, dx, dw, db};
}

std::vector<std::vector<int64_t>> SampledSoftmaxCeInferShape(
    const std::vector<int64_t>& x, const std::vector<int64_t>& w, const std::vector<int64_t>& b,
    const std::vector<int64_t>& t, const std::vector<int64_t>& s, const std::vector<int64_t>& log_q_t,
    const std::vector<int64_t>& log_q_s) {
  return {{x[0]}, x, w, b};
}

std::vector<paddle::DataType> SampledSoftmaxCeInferDtype(const paddle::DataType& x, const paddle::DataType&,
                                                         const paddle::DataType&, const paddle::DataType&,
                                                         const paddle::DataType&, const paddle::DataType&,
                                                         const paddle::DataType&) {
  return {x, x, x, x};
}

PD_BUILD_OP(palm_sampled_softmax_ce)
    .Inputs({"X", "W", "B", "T", "S", "LogQT", "LogQS"})
    .Outputs({"Loss", "DX", "DW", "DB"})
    .Attrs({"with_grad: bool", "grad_scale: float"})
    .SetKernelFn(PD_KERNEL(SampledSoftmaxCeForward))
    .SetInferShapeFn(PD_INFER_SHAPE(SampledSoftmaxCeInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(SampledSoftmaxCeInferDtype));
