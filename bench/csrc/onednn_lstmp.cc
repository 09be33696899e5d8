// One biLM layer (both directions, LSTM with projection, no clipping) through oneDNN's LSTM
// primitive: forward_training + backward per call, with the weight reorders a training step needs
// (weights change every step). Process CPU seconds per call, min and median of the repeats.
// Built and run by bench/onednn_lstm.py against the libdnnl.so.3 of Paddle's wheel; see there.
//
//   onednn_lstmp T B In H P dtype(f32|bf16) repeats
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

extern "C" void omp_set_num_threads(int);

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;
using Args = std::unordered_map<int, memory>;

namespace {

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

memory Filled(const memory::desc& md, const engine& eng, float value) {
  memory m(md, eng);
  if (md.get_data_type() == dt::f32) {
    float* p = static_cast<float*>(m.get_data_handle());
    std::fill(p, p + md.get_size() / sizeof(float), value);
  } else {
    std::fill(static_cast<char*>(m.get_data_handle()), static_cast<char*>(m.get_data_handle()) + md.get_size(), 0);
  }
  return m;
}

// `user` (plain layout) reordered into `want`'s layout, as a training step must after each update.
memory Reordered(memory& user, const memory::desc& want, const engine& eng, stream& s) {
  if (user.get_desc() == want) return user;
  memory out(want, eng);
  reorder(user, out).execute(s, user, out);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s T B In H P f32|bf16 repeats\n", argv[0]);
    return 2;
  }
  const memory::dim T = atoi(argv[1]), B = atoi(argv[2]), In = atoi(argv[3]), H = atoi(argv[4]), P = atoi(argv[5]);
  const dt data = std::string(argv[6]) == "bf16" ? dt::bf16 : dt::f32;
  const int repeats = atoi(argv[7]);
  omp_set_num_threads(std::max(1, atoi(getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "1")));
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  const memory::dim L = 1, D = 2;  // one layer, bidirectional (outputs concatenated)
  auto md = [](memory::dims d, dt t, tag g) { return memory::desc(d, t, g); };
  auto src = md({T, B, In}, data, tag::tnc), dst = md({T, B, D * P}, data, tag::tnc);
  auto w_layer = md({L, D, In, 4, H}, data, tag::any), w_iter = md({L, D, P, 4, H}, data, tag::any);
  auto w_proj = md({L, D, H, P}, data, tag::any), bias = md({L, D, 4, H}, dt::f32, tag::ldgo);
  memory::desc none;
  auto fwd_pd = lstm_forward::primitive_desc(eng, prop_kind::forward_training,
                                             rnn_direction::bidirectional_concat, src, none, none, w_layer, w_iter,
                                             none, w_proj, bias, dst, none, none);
  const dt diff_w = dt::f32;  // gradients of the weights accumulate in f32 also for bf16 data
  auto dw_layer = md({L, D, In, 4, H}, diff_w, tag::any), dw_iter = md({L, D, P, 4, H}, diff_w, tag::any);
  auto dw_proj = md({L, D, H, P}, diff_w, tag::any), dbias = md({L, D, 4, H}, dt::f32, tag::ldgo);
  auto bwd_pd = lstm_backward::primitive_desc(
      eng, prop_kind::backward, rnn_direction::bidirectional_concat, src, none, none, w_layer, w_iter, none, w_proj,
      bias, dst, none, none, src, none, none, dw_layer, dw_iter, none, dw_proj, dbias, dst, none, none, fwd_pd);
  std::printf("impl fwd %s bwd %s\n", fwd_pd.impl_info_str(), bwd_pd.impl_info_str());
  // plain user weights (what a framework's parameters are), reordered every call
  memory u_layer = Filled(md({L, D, In, 4, H}, data, tag::ldigo), eng, 0.01f);
  memory u_iter = Filled(md({L, D, P, 4, H}, data, tag::ldigo), eng, 0.01f);
  memory u_proj = Filled(md({L, D, H, P}, data, tag::ldio), eng, 0.01f);
  memory m_src = Filled(src, eng, 0.1f), m_dst(dst, eng), m_bias = Filled(bias, eng, 0.f);
  memory m_ws(fwd_pd.workspace_desc(), eng), m_ddst = Filled(dst, eng, 0.1f), m_dsrc(src, eng);
  memory m_dbias(dbias, eng);
  memory m_dwl(bwd_pd.diff_weights_layer_desc(), eng), m_dwi(bwd_pd.diff_weights_iter_desc(), eng);
  memory m_dwp(bwd_pd.diff_weights_projection_desc(), eng);
  lstm_forward fwd(fwd_pd);
  lstm_backward bwd(bwd_pd);
  std::vector<double> times;
  for (int r = 0; r < repeats + 1; ++r) {  // the first call warms up
    const double t0 = CpuSeconds();
    memory wl = Reordered(u_layer, fwd_pd.weights_layer_desc(), eng, s);
    memory wi = Reordered(u_iter, fwd_pd.weights_iter_desc(), eng, s);
    memory wp = Reordered(u_proj, fwd_pd.weights_projection_desc(), eng, s);
    fwd.execute(s, Args{{DNNL_ARG_SRC_LAYER, m_src}, {DNNL_ARG_WEIGHTS_LAYER, wl}, {DNNL_ARG_WEIGHTS_ITER, wi},
                        {DNNL_ARG_WEIGHTS_PROJECTION, wp}, {DNNL_ARG_BIAS, m_bias}, {DNNL_ARG_DST_LAYER, m_dst},
                        {DNNL_ARG_WORKSPACE, m_ws}});
    memory bl = Reordered(u_layer, bwd_pd.weights_layer_desc(), eng, s);
    memory bi = Reordered(u_iter, bwd_pd.weights_iter_desc(), eng, s);
    memory bp = Reordered(u_proj, bwd_pd.weights_projection_desc(), eng, s);
    bwd.execute(s, Args{{DNNL_ARG_SRC_LAYER, m_src}, {DNNL_ARG_WEIGHTS_LAYER, bl}, {DNNL_ARG_WEIGHTS_ITER, bi},
                        {DNNL_ARG_WEIGHTS_PROJECTION, bp}, {DNNL_ARG_BIAS, m_bias}, {DNNL_ARG_DST_LAYER, m_dst},
                        {DNNL_ARG_WORKSPACE, m_ws}, {DNNL_ARG_DIFF_DST_LAYER, m_ddst},
                        {DNNL_ARG_DIFF_SRC_LAYER, m_dsrc}, {DNNL_ARG_DIFF_WEIGHTS_LAYER, m_dwl},
                        {DNNL_ARG_DIFF_WEIGHTS_ITER, m_dwi}, {DNNL_ARG_DIFF_WEIGHTS_PROJECTION, m_dwp},
                        {DNNL_ARG_DIFF_BIAS, m_dbias}});
    s.wait();
    if (r) times.push_back(CpuSeconds() - t0);
  }
  std::sort(times.begin(), times.end());
  std::printf("onednn %s forward+backward CPU s: min %.3f median %.3f\n", argv[6], times.front(),
              times[times.size() / 2]);
  return 0;
}
