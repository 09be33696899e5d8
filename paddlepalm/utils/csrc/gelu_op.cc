// Exact GELU, x * Phi(x) = 0.5 x erfc(-x / sqrt 2) (= 0.5 x (1 + erf(x / sqrt 2)), without the
// cancellation of 1 + erf in the negative tail), and its gradient as a Paddle custom CPU operator. Built and loaded by paddlepalm/utils/fused_gelu.py; the reference is
// paddle.nn.functional.gelu (approximate=False).
//
// Why: Paddle's CPU gelu and gelu_grad kernels evaluate erf one element at a time; here the loops
// are written for the compiler to vectorize (-O3 -ffast-math -fopenmp-simd: erfcf and expf through
// glibc's vector math library), the gradient in one pass over x and the incoming gradient.
#include <cmath>
#include <cstdint>

#include "paddle/extension.h"

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

void CheckInput(const paddle::Tensor& x, const char* what) {
  PD_CHECK(x.is_cpu(), "palm_gelu: CPU tensors only (", what, ")");
  PD_CHECK(x.dtype() == paddle::DataType::FLOAT32, "palm_gelu: float32 only (", what, ")");
}

}  // namespace

std::vector<paddle::Tensor> GeluForward(const paddle::Tensor& x) {
  CheckInput(x, "X");
  paddle::Tensor out = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* in = x.data<float>();
  float* y = out.data<float>();
  const int64_t n = x.numel();
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = in[i];
    y[i] = 0.5f * v * erfcf(-v * kInvSqrt2);
  }
  return {out};
}

std::vector<paddle::Tensor> GeluBackward(const paddle::Tensor& x, const paddle::Tensor& grad_out) {
  CheckInput(x, "X");
  CheckInput(grad_out, "Out@GRAD");
  PD_CHECK(x.numel() == grad_out.numel(), "palm_gelu: X and Out@GRAD differ in size");
  paddle::Tensor grad_x = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* in = x.data<float>();
  const float* g = grad_out.data<float>();
  float* dx = grad_x.data<float>();
  const int64_t n = x.numel();
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = in[i];
    const float cdf = 0.5f * erfcf(-v * kInvSqrt2);
    const float pdf = kInvSqrt2Pi * expf(-0.5f * v * v);
    dx[i] = g[i] * (cdf + v * pdf);
  }
  return {grad_x};
}

std::vector<std::vector<int64_t>> GeluInferShape(const std::vector<int64_t>& x_shape) { return {x_shape}; }

std::vector<paddle::DataType> GeluInferDtype(const paddle::DataType& x_dtype) { return {x_dtype}; }

PD_BUILD_OP(palm_gelu)
    .Inputs({"X"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(GeluForward))
    .SetInferShapeFn(PD_INFER_SHAPE(GeluInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(GeluInferDtype));

PD_BUILD_GRAD_OP(palm_gelu)
    .Inputs({"X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .SetKernelFn(PD_KERNEL(GeluBackward));
