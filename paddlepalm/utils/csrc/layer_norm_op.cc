// Layer normalization over the last axis, forward and gradient, as a Paddle custom CPU operator.
// Built and loaded by paddlepalm/utils/fused_layer_norm.py; the reference is
// paddle.nn.functional.layer_norm over the last axis (with scale and bias).
//
// Why: Paddle's CPU layer_norm_grad kernel is slow (its numpy replacement in cpu_speed.py is
// faster, but still several passes over the tensor from Python). Here each row is one loop nest
// the compiler vectorizes: the forward saves each row's mean and 1/std; the gradient of a row is
// two dot products and one pass, and the scale and bias gradients are accumulated row by row.
#include <cmath>
#include <cstdint>
#include <vector>

#include "paddle/extension.h"

namespace {

void CheckFloat(const paddle::Tensor& t, const char* what) {
  PD_CHECK(t.is_cpu(), "palm_layer_norm: CPU tensors only (", what, ")");
  PD_CHECK(t.dtype() == paddle::DataType::FLOAT32, "palm_layer_norm: float32 only (", what, ")");
}

struct Rows {
  int64_t rows, width;
};

Rows RowsOf(const paddle::Tensor& x, const paddle::Tensor& scale, const paddle::Tensor& bias) {
  CheckFloat(x, "X");
  CheckFloat(scale, "Scale");
  CheckFloat(bias, "Bias");
  PD_CHECK(!x.shape().empty(), "palm_layer_norm: X needs at least one axis");
  const int64_t width = x.shape().back();
  PD_CHECK(scale.numel() == width && bias.numel() == width, "palm_layer_norm: Scale and Bias must have X's last size");
  return {width ? x.numel() / width : 0, width};
}

}  // namespace

std::vector<paddle::Tensor> LayerNormForward(const paddle::Tensor& x, const paddle::Tensor& scale,
                                             const paddle::Tensor& bias, float epsilon) {
  const Rows r = RowsOf(x, scale, bias);
  paddle::Tensor out = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  paddle::Tensor mean = paddle::empty({r.rows}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  paddle::Tensor rstd = paddle::empty({r.rows}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* in = x.data<float>();
  const float* w = scale.data<float>();
  const float* b = bias.data<float>();
  float* y = out.data<float>();
  float* mu_out = mean.data<float>();
  float* rstd_out = rstd.data<float>();
  const float inv_width = 1.0f / static_cast<float>(r.width);
  for (int64_t i = 0; i < r.rows; ++i) {
    const float* row = in + i * r.width;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < r.width; ++j) sum += row[j];
    const float mu = sum * inv_width;
    float squares = 0.0f;
#pragma omp simd reduction(+ : squares)
    for (int64_t j = 0; j < r.width; ++j) {
      const float c = row[j] - mu;
      squares += c * c;
    }
    const float inv_std = 1.0f / std::sqrt(squares * inv_width + epsilon);
    float* out_row = y + i * r.width;
#pragma omp simd
    for (int64_t j = 0; j < r.width; ++j) out_row[j] = (row[j] - mu) * inv_std * w[j] + b[j];
    mu_out[i] = mu;
    rstd_out[i] = inv_std;
  }
  return {out, mean, rstd};
}

std::vector<paddle::Tensor> LayerNormBackward(const paddle::Tensor& x, const paddle::Tensor& scale,
                                              const paddle::Tensor& bias, const paddle::Tensor& mean,
                                              const paddle::Tensor& rstd, const paddle::Tensor& grad_out,
                                              float epsilon) {
  const Rows r = RowsOf(x, scale, bias);
  CheckFloat(grad_out, "Out@GRAD");
  PD_CHECK(grad_out.numel() == x.numel(), "palm_layer_norm: Out@GRAD differs from X in size");
  paddle::Tensor grad_x = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  paddle::Tensor grad_scale = paddle::empty(scale.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  paddle::Tensor grad_bias = paddle::empty(bias.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* in = x.data<float>();
  const float* w = scale.data<float>();
  const float* mu = mean.data<float>();
  const float* inv_std = rstd.data<float>();
  const float* g = grad_out.data<float>();
  float* dx = grad_x.data<float>();
  std::vector<float> dw(r.width, 0.0f), db(r.width, 0.0f);
  const float inv_width = 1.0f / static_cast<float>(r.width);
  for (int64_t i = 0; i < r.rows; ++i) {
    const float* row = in + i * r.width;
    const float* g_row = g + i * r.width;
    float* dx_row = dx + i * r.width;
    const float m = mu[i], s = inv_std[i];
    float sum_gw = 0.0f, sum_gw_xhat = 0.0f;
#pragma omp simd reduction(+ : sum_gw, sum_gw_xhat)
    for (int64_t j = 0; j < r.width; ++j) {
      const float xhat = (row[j] - m) * s;
      const float gw = g_row[j] * w[j];
      sum_gw += gw;
      sum_gw_xhat += gw * xhat;
      dw[j] += g_row[j] * xhat;
      db[j] += g_row[j];
    }
    const float mean_gw = sum_gw * inv_width, mean_gw_xhat = sum_gw_xhat * inv_width;
#pragma omp simd
    for (int64_t j = 0; j < r.width; ++j) {
      const float xhat = (row[j] - m) * s;
      dx_row[j] = s * (g_row[j] * w[j] - mean_gw - xhat * mean_gw_xhat);
    }
  }
  float* dscale = grad_scale.data<float>();
  float* dbias = grad_bias.data<float>();
  for (int64_t j = 0; j < r.width; ++j) {
    dscale[j] = dw[j];
    dbias[j] = db[j];
  }
  return {grad_x, grad_scale, grad_bias};
}

std::vector<std::vector<int64_t>> LayerNormInferShape(const std::vector<int64_t>& x_shape,
                                                      const std::vector<int64_t>& scale_shape,
                                                      const std::vector<int64_t>& bias_shape) {
  int64_t rows = 1;
  for (size_t k = 0; k + 1 < x_shape.size(); ++k) rows *= x_shape[k];
  return {x_shape, {rows}, {rows}};
}

std::vector<paddle::DataType> LayerNormInferDtype(const paddle::DataType& x_dtype, const paddle::DataType& scale_dtype,
                                                  const paddle::DataType& bias_dtype) {
  return {x_dtype, x_dtype, x_dtype};
}

PD_BUILD_OP(palm_layer_norm)
    .Inputs({"X", "Scale", "Bias"})
    .Outputs({"Out", "Mean", "Rstd"})
    .Attrs({"epsilon: float"})
    .SetKernelFn(PD_KERNEL(LayerNormForward))
    .SetInferShapeFn(PD_INFER_SHAPE(LayerNormInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(LayerNormInferDtype));

PD_BUILD_GRAD_OP(palm_layer_norm)
    .Inputs({"X", "Scale", "Bias", "Mean", "Rstd", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Scale"), paddle::Grad("Bias")})
    .Attrs({"epsilon: float"})
    .SetKernelFn(PD_KERNEL(LayerNormBackward));
