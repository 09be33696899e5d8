// Linear-chain CRF negative log-likelihood as a Paddle custom CPU operator: the forward
// algorithm over the whole sequence, and its gradient by the forward-backward algorithm, in
// C++ (no Python loop over time steps). Built and loaded by paddlepalm/utils/fused_crf.py; the
// reference semantics are paddlepalm/utils/crf.py (crf_nll).
//
// Shapes (B batch, T steps, K tags):
//   Emissions [B,T,K] float32, Transitions [K+2,K] float32 (row 0 start scores, row 1 stop
//   scores, rows 2.. the from -> to scores), Labels [B,T] int64, Lengths [B] int64 (clipped to
//   [1, T]); Nll [B] = log Z - score(gold path). Positions at or past a row's length take no part.
//
// Sums of exponentials are taken in double, each step with its maximum factored out, so that
// no transition spread or sequence length under- or overflows.
#include <algorithm>
#include <cmath>
#include <vector>

#include "paddle/extension.h"

namespace {

struct Shape {
  int B, T, K;
};

Shape CheckInputs(const paddle::Tensor& emissions, const paddle::Tensor& transitions, const paddle::Tensor& labels,
                  const paddle::Tensor& lengths) {
  for (const paddle::Tensor* t : {&emissions, &transitions, &labels, &lengths})
    PD_CHECK(t->is_cpu(), "palm_crf: CPU tensors only");
  PD_CHECK(emissions.dtype() == paddle::DataType::FLOAT32 && transitions.dtype() == paddle::DataType::FLOAT32,
           "palm_crf: float32 emissions and transitions");
  PD_CHECK(labels.dtype() == paddle::DataType::INT64 && lengths.dtype() == paddle::DataType::INT64,
           "palm_crf: int64 labels and lengths");
  PD_CHECK(emissions.shape().size() == 3, "palm_crf: Emissions [B,T,K]");
  const int B = emissions.shape()[0], T = emissions.shape()[1], K = emissions.shape()[2];
  PD_CHECK(transitions.shape().size() == 2 && transitions.shape()[0] == K + 2 && transitions.shape()[1] == K,
           "palm_crf: Transitions [K+2,K]");
  PD_CHECK(labels.shape().size() == 2 && labels.shape()[0] == B && labels.shape()[1] == T, "palm_crf: Labels [B,T]");
  PD_CHECK(lengths.shape().size() == 1 && lengths.shape()[0] == B, "palm_crf: Lengths [B]");
  return {B, T, K};
}

inline int LengthOf(const int64_t* lengths, int b, int T) {
  return static_cast<int>(std::min<int64_t>(std::max<int64_t>(lengths[b], 1), T));
}

// exp(trans[i][j] - top) for the K x K from -> to block, top its maximum.
double ExpTransitions(const float* transitions, int K, std::vector<double>* out) {
  const float* trans = transitions + 2 * K;
  double top = trans[0];
  for (int n = 0; n < K * K; ++n) top = std::max(top, static_cast<double>(trans[n]));
  out->resize(static_cast<size_t>(K) * K);
  for (int n = 0; n < K * K; ++n) (*out)[n] = std::exp(trans[n] - top);
  return top;
}

// alpha[t][j] = e[t][j] + log sum_i exp(alpha[t-1][i] + trans[i][j]) for t < L; returns log Z.
double Forward(const float* e, const float* transitions, const std::vector<double>& exp_trans, double top, int L,
               int K, double* alpha) {
  const float* start = transitions;
  const float* stop = transitions + K;
  std::vector<double> v(K), s(K);
  for (int j = 0; j < K; ++j) alpha[j] = start[j] + e[j];
  for (int t = 1; t < L; ++t) {
    const double* prev = alpha + static_cast<size_t>(t - 1) * K;
    const double m = *std::max_element(prev, prev + K);
    for (int i = 0; i < K; ++i) v[i] = std::exp(prev[i] - m);
    std::fill(s.begin(), s.end(), 0.0);
    for (int i = 0; i < K; ++i) {
      const double vi = v[i];
      const double* row = exp_trans.data() + static_cast<size_t>(i) * K;
      for (int j = 0; j < K; ++j) s[j] += vi * row[j];
    }
    double* cur = alpha + static_cast<size_t>(t) * K;
    const float* et = e + static_cast<size_t>(t) * K;
    for (int j = 0; j < K; ++j) cur[j] = et[j] + m + top + std::log(s[j]);
  }
  const double* last = alpha + static_cast<size_t>(L - 1) * K;
  double m = last[0] + stop[0];
  for (int j = 1; j < K; ++j) m = std::max(m, last[j] + stop[j]);
  double total = 0.0;
  for (int j = 0; j < K; ++j) total += std::exp(last[j] + stop[j] - m);
  return m + std::log(total);
}

double GoldScore(const float* e, const float* transitions, const int64_t* y, int L, int K) {
  const float* trans = transitions + 2 * K;
  double score = transitions[y[0]] + transitions[K + y[L - 1]];
  for (int t = 0; t < L; ++t) score += e[static_cast<size_t>(t) * K + y[t]];
  for (int t = 1; t < L; ++t) score += trans[y[t - 1] * K + y[t]];
  return score;
}

void CheckLabels(const int64_t* y, int L, int K, int b) {
  for (int t = 0; t < L; ++t)
    PD_CHECK(y[t] >= 0 && y[t] < K, "palm_crf: label ", y[t], " at row ", b, ", position ", t, " outside [0, ", K,
             ")");
}

}  // namespace

std::vector<paddle::Tensor> CrfForward(const paddle::Tensor& emissions, const paddle::Tensor& transitions,
                                       const paddle::Tensor& labels, const paddle::Tensor& lengths) {
  const Shape s = CheckInputs(emissions, transitions, labels, lengths);
  auto nll = paddle::empty({s.B}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  std::vector<double> exp_trans;
  const double top = ExpTransitions(transitions.data<float>(), s.K, &exp_trans);
  std::vector<double> alpha(static_cast<size_t>(s.T) * s.K);
  for (int b = 0; b < s.B; ++b) {
    const int L = LengthOf(lengths.data<int64_t>(), b, s.T);
    const float* e = emissions.data<float>() + static_cast<size_t>(b) * s.T * s.K;
    const int64_t* y = labels.data<int64_t>() + static_cast<size_t>(b) * s.T;
    CheckLabels(y, L, s.K, b);
    const double log_z = Forward(e, transitions.data<float>(), exp_trans, top, L, s.K, alpha.data());
    nll.data<float>()[b] = static_cast<float>(log_z - GoldScore(e, transitions.data<float>(), y, L, s.K));
  }
  return {nll};
}

// d nll / d e[t][j] = p_t(j) - [y_t = j]; d / d trans[i][j] = sum_t P(y_{t-1} = i, y_t = j) - gold
// count; start and stop: the first and last marginals minus the gold tags. Each row's terms
// are scaled by its upstream gradient.
std::vector<paddle::Tensor> CrfBackward(const paddle::Tensor& emissions, const paddle::Tensor& transitions,
                                        const paddle::Tensor& labels, const paddle::Tensor& lengths,
                                        const paddle::Tensor& d_nll) {
  const Shape s = CheckInputs(emissions, transitions, labels, lengths);
  const int B = s.B, T = s.T, K = s.K;
  auto d_emissions = paddle::full({B, T, K}, 0.f, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto d_transitions = paddle::full({K + 2, K}, 0.f, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* trans_p = transitions.data<float>();
  const float* stop = trans_p + K;
  std::vector<double> exp_trans;
  const double top = ExpTransitions(trans_p, K, &exp_trans);
  std::vector<double> alpha(static_cast<size_t>(T) * K), beta(static_cast<size_t>(T) * K);
  std::vector<double> pair(static_cast<size_t>(K) * K, 0.0), d_start(K, 0.0), d_stop(K, 0.0);
  std::vector<double> a(K), c(K), w(K);
  std::vector<double> gold_pairs(static_cast<size_t>(K) * K, 0.0);
  for (int b = 0; b < B; ++b) {
    const double g = d_nll.data<float>()[b];
    const int L = LengthOf(lengths.data<int64_t>(), b, T);
    const float* e = emissions.data<float>() + static_cast<size_t>(b) * T * K;
    const int64_t* y = labels.data<int64_t>() + static_cast<size_t>(b) * T;
    CheckLabels(y, L, K, b);
    const double log_z = Forward(e, trans_p, exp_trans, top, L, K, alpha.data());
    // beta[t][i] = log sum_j exp(trans[i][j] + e[t+1][j] + beta[t+1][j]); beta[L-1] = stop
    for (int i = 0; i < K; ++i) beta[static_cast<size_t>(L - 1) * K + i] = stop[i];
    for (int t = L - 2; t >= 0; --t) {
      const double* next = beta.data() + static_cast<size_t>(t + 1) * K;
      const float* en = e + static_cast<size_t>(t + 1) * K;
      for (int j = 0; j < K; ++j) w[j] = en[j] + next[j];
      const double m = *std::max_element(w.begin(), w.end());
      for (int j = 0; j < K; ++j) w[j] = std::exp(w[j] - m);
      double* cur = beta.data() + static_cast<size_t>(t) * K;
      for (int i = 0; i < K; ++i) {
        const double* row = exp_trans.data() + static_cast<size_t>(i) * K;
        double total = 0.0;
        for (int j = 0; j < K; ++j) total += row[j] * w[j];
        cur[i] = m + top + std::log(total);
      }
    }
    float* de = d_emissions.data<float>() + static_cast<size_t>(b) * T * K;
    for (int t = 0; t < L; ++t) {
      for (int j = 0; j < K; ++j) {
        const size_t n = static_cast<size_t>(t) * K + j;
        de[n] = static_cast<float>(g * std::exp(alpha[n] + beta[n] - log_z));
      }
      de[static_cast<size_t>(t) * K + y[t]] -= static_cast<float>(g);
    }
    for (int j = 0; j < K; ++j) {
      d_start[j] += g * std::exp(alpha[j] + beta[j] - log_z);
      const size_t n = static_cast<size_t>(L - 1) * K + j;
      d_stop[j] += g * std::exp(alpha[n] + stop[j] - log_z);
    }
    d_start[y[0]] -= g;
    d_stop[y[L - 1]] -= g;
    // pair[i][j] += g * sum_t exp(alpha[t-1][i] + trans[i][j] + e[t][j] + beta[t][j] - log Z), the
    // exp(trans - top) factor applied once at the end
    for (int t = 1; t < L; ++t) {
      const double* prev = alpha.data() + static_cast<size_t>(t - 1) * K;
      const double* bt = beta.data() + static_cast<size_t>(t) * K;
      const float* et = e + static_cast<size_t>(t) * K;
      const double ma = *std::max_element(prev, prev + K);
      double mc = et[0] + bt[0];
      for (int j = 1; j < K; ++j) mc = std::max(mc, et[j] + bt[j]);
      const double scale = g * std::exp(ma + mc + top - log_z);
      for (int i = 0; i < K; ++i) a[i] = scale * std::exp(prev[i] - ma);
      for (int j = 0; j < K; ++j) c[j] = std::exp(et[j] + bt[j] - mc);
      for (int i = 0; i < K; ++i) {
        const double ai = a[i];
        double* row = pair.data() + static_cast<size_t>(i) * K;
        for (int j = 0; j < K; ++j) row[j] += ai * c[j];
      }
      gold_pairs[y[t - 1] * K + y[t]] += g;
    }
  }
  float* dt = d_transitions.data<float>();
  for (int j = 0; j < K; ++j) {
    dt[j] = static_cast<float>(d_start[j]);
    dt[K + j] = static_cast<float>(d_stop[j]);
  }
  for (int n = 0; n < K * K; ++n) dt[2 * K + n] = static_cast<float>(pair[n] * exp_trans[n] - gold_pairs[n]);
  return {d_emissions, d_transitions};
}

std::vector<std::vector<int64_t>> CrfInferShape(const std::vector<int64_t>& emissions, const std::vector<int64_t>&,
                                                const std::vector<int64_t>&, const std::vector<int64_t>&) {
  return {{emissions[0]}};
}

std::vector<paddle::DataType> CrfInferDtype(const paddle::DataType& emissions, const paddle::DataType&,
                                            const paddle::DataType&, const paddle::DataType&) {
  return {emissions};
}

PD_BUILD_OP(palm_crf)
    .Inputs({"Emissions", "Transitions", "Labels", "Lengths"})
    .Outputs({"Nll"})
    .SetKernelFn(PD_KERNEL(CrfForward))
    .SetInferShapeFn(PD_INFER_SHAPE(CrfInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(CrfInferDtype));

PD_BUILD_GRAD_OP(palm_crf)
    .Inputs({"Emissions", "Transitions", "Labels", "Lengths", paddle::Grad("Nll")})
    .Outputs({paddle::Grad("Emissions"), paddle::Grad("Transitions")})
    .SetKernelFn(PD_KERNEL(CrfBackward));
