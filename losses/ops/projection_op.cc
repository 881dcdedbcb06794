// TensorFlow ops `Projection` and `ProjectionGrad`: the soft silhouette and the soft colour image of a projected
// point cloud (baseline §5.3-5.4), the fused form of model/projection.py.
//
//   uvw:      T [B, N, 3]  projected points (u rows, v columns, w depth), from model.camera.project
//   colours:  T [B, N, C]  per-point colours; C = 0 renders the silhouette alone
//   params:   T [6]        (sigma_sq, beta, depth_shift, max_depth, softmax_eps, renorm_eps), projection_math.h
//   mask:     T [B, H, W]  tanh(Σ_n g(u_n - i) g(v_n - j)), g(δ) = exp(-δ²/(2σ²)), over the window of
//                          (2·splat_radius + 1)² pixels around (round(u_n), round(v_n))
//   image:    T [B, H, W, C]  per-pixel softmax over the points in the pixel's (2·well_radius + 1)² well
//   colour_state: T [B, H, W, 3]  per pixel (largest in-well logit, number of visible in-well points, softmax
//                          denominator): what ProjectionGrad needs of the forward pass
//
// ProjectionGrad returns the gradients with respect to uvw and colours. As in the baseline the colour image has
// no gradient with respect to u and v (its well is a hard comparison); the silhouette has none w.r.t. w.
// A NaN u or v makes the whole mask of its batch element NaN, a NaN w its whole image, as in the dense form.
//
// The CPU kernels shard over TensorFlow's intra-op thread pool: the forward pass by (batch element, band of
// rows), each shard scanning the points and summing into its own rows in point order, so the result does not
// depend on the number of threads; the backward pass by (batch element, block of points). The GPU kernels
// (compiled only when PROJECTION_WITH_CUDA is defined) live in projection_kernel.cu behind projection_cuda.h.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

#include "projection_math.h"

#ifdef PROJECTION_WITH_CUDA
#include "projection_cuda.h"
#include "xla/stream_executor/stream.h"
#endif

namespace tensorflow {
namespace {

using ::projection::Params;
using ::projection::Shape;
using shape_inference::DimensionHandle;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

absl::Status ProjectionShape(InferenceContext* c) {
  ShapeHandle uvw, colours, params;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &uvw));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &colours));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, &params));
  DimensionHandle unused, batch;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(uvw, 2), 3, &unused));
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(params, 0), ::projection::kNumParams, &unused));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(uvw, 0), c->Dim(colours, 0), &batch));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(uvw, 1), c->Dim(colours, 1), &unused));
  int64_t size;
  TF_RETURN_IF_ERROR(c->GetAttr("image_size", &size));
  c->set_output(0, c->MakeShape({batch, size, size}));
  c->set_output(1, c->MakeShape({batch, size, size, c->Dim(colours, 2)}));
  c->set_output(2, c->MakeShape({batch, size, size, 3}));
  return absl::OkStatus();
}

REGISTER_OP("Projection")
    .Input("uvw: T")
    .Input("colours: T")
    .Input("params: T")
    .Output("mask: T")
    .Output("image: T")
    .Output("colour_state: T")
    .Attr("T: {float, double}")
    .Attr("image_size: int >= 1")
    .Attr("splat_radius: int >= 0")
    .Attr("well_radius: int >= 0")
    .SetShapeFn(ProjectionShape)
    .Doc(R"doc(
Soft silhouette and soft colour image of projected points (baseline §5.3-5.4); see projection_op.cc.
uvw: [B, N, 3]. colours: [B, N, C]. params: [6]. mask: [B, H, W]. image: [B, H, W, C]. colour_state: [B, H, W, 3].
)doc");

REGISTER_OP("ProjectionGrad")
    .Input("uvw: T")
    .Input("colours: T")
    .Input("params: T")
    .Input("mask: T")
    .Input("image: T")
    .Input("colour_state: T")
    .Input("grad_mask: T")
    .Input("grad_image: T")
    .Output("grad_uvw: T")
    .Output("grad_colours: T")
    .Attr("T: {float, double}")
    .Attr("image_size: int >= 1")
    .Attr("splat_radius: int >= 0")
    .Attr("well_radius: int >= 0")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Gradients of Projection's mask and image with respect to uvw and colours (none w.r.t. params).
)doc");

// Attributes and the checks of a call, shared by every kernel.
class ProjectionBase : public OpKernel {
 public:
  explicit ProjectionBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("image_size", &image_size_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("splat_radius", &splat_radius_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("well_radius", &well_radius_));
    OP_REQUIRES(ctx, splat_radius_ <= ::projection::kMaxSplatRadius,
                errors::InvalidArgument("Projection: splat_radius ", splat_radius_, " exceeds ",
                                        ::projection::kMaxSplatRadius, " (sigma_sq too large)"));
  }

 protected:
  // The shape of a call, after checking uvw [B, N, 3], colours [B, N, C] and params [6].
  absl::Status CheckInputs(OpKernelContext* ctx, Shape* shape) const {
    const Tensor& uvw = ctx->input(0);
    const Tensor& colours = ctx->input(1);
    const Tensor& params = ctx->input(2);
    if (uvw.dims() != 3 || uvw.dim_size(2) != 3) {
      return errors::InvalidArgument("Projection: uvw must have shape [B, N, 3], got ", uvw.shape().DebugString());
    }
    if (colours.dims() != 3 || colours.dim_size(0) != uvw.dim_size(0) || colours.dim_size(1) != uvw.dim_size(1)) {
      return errors::InvalidArgument("Projection: colours must have shape [B, N, C] with the B and N of uvw ",
                                     uvw.shape().DebugString(), ", got ", colours.shape().DebugString());
    }
    if (params.dims() != 1 || params.dim_size(0) != ::projection::kNumParams) {
      return errors::InvalidArgument("Projection: params must have shape [", ::projection::kNumParams, "], got ",
                                     params.shape().DebugString());
    }
    const int64_t int_max = std::numeric_limits<int>::max();
    const int64_t pixels = static_cast<int64_t>(image_size_) * image_size_;
    const int64_t widest = std::max<int64_t>(::projection::kStateSize, colours.dim_size(2));
    if (uvw.dim_size(1) > int_max || uvw.dim_size(0) * pixels * widest > int_max ||
        uvw.dim_size(0) * uvw.dim_size(1) * widest > int_max) {
      return errors::InvalidArgument("Projection: sizes must fit in int32 (B = ", uvw.dim_size(0), ", N = ",
                                     uvw.dim_size(1), ", C = ", colours.dim_size(2), ", H = W = ", image_size_, ")");
    }
    *shape = Shape{static_cast<int>(uvw.dim_size(0)), static_cast<int>(uvw.dim_size(1)),
                   static_cast<int>(colours.dim_size(2)), image_size_, splat_radius_, well_radius_};
    return absl::OkStatus();
  }

  int image_size_ = 0;
  int splat_radius_ = 0;
  int well_radius_ = 0;
};

// params widened to double, read on the host (the GPU kernels register params as host memory).
template <typename T>
std::vector<double> HostParams(const Tensor& params) {
  const auto flat = params.flat<T>();
  return std::vector<double>(flat.data(), flat.data() + flat.size());
}

// The tensors of one call (device memory for the GPU kernels), laid out as the op's documentation says.
template <typename T>
struct ForwardTensors {
  const T *uvw, *colours;
  T *mask, *image, *state;
};

template <typename T>
struct BackwardTensors {
  const T *uvw, *colours, *mask, *image, *state, *grad_mask, *grad_image;
  T *grad_uvw, *grad_colours;
};

// `Projection`: checks, params and outputs here; the device's work in Launch.
template <typename T>
class ProjectionOp : public ProjectionBase {
 public:
  using ProjectionBase::ProjectionBase;

  void Compute(OpKernelContext* ctx) override {
    Shape s;
    OP_REQUIRES_OK(ctx, CheckInputs(ctx, &s));
    const std::vector<double> params = HostParams<T>(ctx->input(2));
    Tensor *mask = nullptr, *image = nullptr, *state = nullptr;
    const int size = s.image_size;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({s.batch, size, size}), &mask));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({s.batch, size, size, s.channels}), &image));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({s.batch, size, size, ::projection::kStateSize}),
                                             &state));
    Launch(ctx, s, params.data(),
           ForwardTensors<T>{ctx->input(0).flat<T>().data(), ctx->input(1).flat<T>().data(), mask->flat<T>().data(),
                             image->flat<T>().data(), state->flat<T>().data()});
  }

 protected:
  virtual void Launch(OpKernelContext* ctx, const Shape& s, const double* params, const ForwardTensors<T>& t) = 0;
};

// `ProjectionGrad`: checks (mask, image, colour_state and the incoming gradients must have the forward pass's
// shapes), params and outputs here; the device's work in Launch.
template <typename T>
class ProjectionGradOp : public ProjectionBase {
 public:
  using ProjectionBase::ProjectionBase;

  void Compute(OpKernelContext* ctx) override {
    Shape s;
    OP_REQUIRES_OK(ctx, CheckInputs(ctx, &s));
    const TensorShape mask({s.batch, s.image_size, s.image_size});
    const TensorShape image({s.batch, s.image_size, s.image_size, s.channels});
    const TensorShape state({s.batch, s.image_size, s.image_size, ::projection::kStateSize});
    const TensorShape expected[] = {mask, image, state, mask, image};
    const char* names[] = {"mask", "image", "colour_state", "grad_mask", "grad_image"};
    for (int k = 0; k < 5; ++k) {
      OP_REQUIRES(ctx, ctx->input(3 + k).shape() == expected[k],
                  errors::InvalidArgument("ProjectionGrad: ", names[k], " must have shape ",
                                          expected[k].DebugString(), ", got ",
                                          ctx->input(3 + k).shape().DebugString()));
    }
    const std::vector<double> params = HostParams<T>(ctx->input(2));
    Tensor *grad_uvw = nullptr, *grad_colours = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(0).shape(), &grad_uvw));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ctx->input(1).shape(), &grad_colours));
    const T* in[8];
    for (int k = 0; k < 8; ++k) in[k] = ctx->input(k).flat<T>().data();
    Launch(ctx, s, params.data(),
           BackwardTensors<T>{in[0], in[1], in[3], in[4], in[5], in[6], in[7], grad_uvw->flat<T>().data(),
                              grad_colours->flat<T>().data()});
  }

 protected:
  virtual void Launch(OpKernelContext* ctx, const Shape& s, const double* params, const BackwardTensors<T>& t) = 0;
};

// ---------------------------------------------------------------------------------------------------------
// CPU kernels.

constexpr int kMinBandRows = 8;      // fewest image rows per forward shard
constexpr int kPointsPerBlock = 64;  // points per backward shard

// Rows [row_begin, row_end) of one batch element's outputs: mask [H, W], image [H, W, C], state [H, W, 3].
// Every shard scans all points and adds their contributions to its own rows, in point order.
template <typename T>
void ForwardBand(const Shape& s, const Params<T>& p, const T* uvw, const T* colours, int row_begin, int row_end,
                 T* mask, T* image, T* state) {
  const int64_t first = static_cast<int64_t>(row_begin) * s.image_size;
  const int64_t last = static_cast<int64_t>(row_end) * s.image_size;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  std::fill(mask + first, mask + last, T(0));
  std::fill(image + first * s.channels, image + last * s.channels, T(0));
  for (int64_t k = first; k < last; ++k) {
    state[::projection::kStateSize * k] = s.channels > 0 ? -std::numeric_limits<T>::infinity() : T(0);
    state[::projection::kStateSize * k + 1] = state[::projection::kStateSize * k + 2] = T(0);
  }
  bool nan_uv = false, nan_w = false;
  for (int n = 0; n < s.points; ++n) {
    const T* point = uvw + 3 * n;
    if (::projection::IsNan(point[0]) || ::projection::IsNan(point[1])) {
      nan_uv = true;  // the whole mask becomes NaN, as in the dense form
      continue;
    }
    ::projection::ForEachSplatPixel(s, p, point[0], point[1], row_begin, row_end,
                                  [&](int pixel, T weight) { mask[pixel] += weight; });
  }
  if (s.channels > 0) {
    // One pass (an online softmax): each well's largest logit so far is its shift; Z = Σ e^(l - shift) and
    // Σ e^(l - shift)·colour are rescaled whenever a point raises it. (The CUDA kernel, which adds with
    // atomics, finds the largest logit in a pass of its own first.)
    for (int n = 0; n < s.points; ++n) {
      const T* point = uvw + 3 * n;
      const T* colour = colours + static_cast<int64_t>(n) * s.channels;
      nan_w |= ::projection::IsNan(point[2]);  // the whole image becomes NaN, as in the dense form
      ::projection::ForEachWellPixel(s, p, point[0], point[1], point[2], row_begin, row_end,
                                   [&](int pixel, T logit) {
                                     T* st = state + ::projection::kStateSize * pixel;
                                     T* out = image + static_cast<int64_t>(pixel) * s.channels;
                                     if (logit > st[0]) {  // a new largest logit (st[0] starts at -inf)
                                       const T scale = ::projection::Exp(st[0] - logit);
                                       st[0] = logit;
                                       st[2] *= scale;
                                       for (int c = 0; c < s.channels; ++c) out[c] *= scale;
                                     }
                                     const T e = ::projection::ShiftedExp(logit, st[0]);
                                     st[1] += T(1);
                                     st[2] += e;
                                     for (int c = 0; c < s.channels; ++c) out[c] += e * colour[c];
                                   });
    }
  }
  for (int64_t k = first; k < last; ++k) {
    if (nan_uv) mask[k] = nan;
    if (nan_w) state[::projection::kStateSize * k + 1] = nan;
    ::projection::FinishPixel(s, p, mask + k, image + k * s.channels, state + ::projection::kStateSize * k);
  }
}

// The device tags of Run: each op's work on the CPU (here) or the GPU (projection_kernel.cu).
struct OnCpu {};
struct OnGpu {};

// The kernel of an op on a device: `Base` (ProjectionOp<T> or ProjectionGradOp<T>) with Run as its Launch.
template <typename Base, typename Tensors, typename Device>
class Kernel : public Base {
 public:
  using Base::Base;

 protected:
  void Launch(OpKernelContext* ctx, const Shape& s, const double* params, const Tensors& t) override {
    Run(Device(), ctx, s, params, t);
  }
};

// Forward pass on the CPU: shards of (batch element, band of rows).
template <typename T>
void Run(OnCpu, OpKernelContext* ctx, const Shape& s, const double* params, const ForwardTensors<T>& t) {
  const Params<T> p = ::projection::MakeParams<T>(params);
  const int size = s.image_size;
  const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  // Enough bands of rows per image for every thread to get about two shards (each band scans every point).
  const int bands = std::min((size + kMinBandRows - 1) / kMinBandRows,
                             std::max(1, (2 * workers->num_threads + s.batch - 1) / std::max(1, s.batch)));
  const int band_rows = (size + bands - 1) / bands;
  const int64_t pixels = static_cast<int64_t>(size) * size;
  // Shard's cost unit is about one cycle: a point's window, its well, each pixel's finish.
  const int64_t window = (2 * s.splat_radius + 1) * (2 * s.splat_radius + 1) * 4;
  const int64_t well = s.channels > 0 ? (2 * s.well_radius + 1) * (2 * s.well_radius + 1) * (30 + s.channels) : 0;
  const int64_t cost = s.points * (20 + (window + well) / bands) + 30 * pixels / bands;
  Shard(workers->num_threads, workers->workers, static_cast<int64_t>(s.batch) * bands, cost,
        [&](int64_t begin, int64_t end) {
          for (int64_t unit = begin; unit < end; ++unit) {
            const int64_t b = unit / bands;
            const int row_begin = std::min(static_cast<int>(unit % bands) * band_rows, size);
            ForwardBand(s, p, t.uvw + b * s.points * 3, t.colours + b * s.points * s.channels, row_begin,
                        std::min(row_begin + band_rows, size), t.mask + b * pixels,
                        t.image + b * pixels * s.channels, t.state + b * pixels * ::projection::kStateSize);
          }
        });
}

// Backward pass on the CPU: dL/dS per pixel, then shards of (batch element, block of points).
template <typename T>
void Run(OnCpu, OpKernelContext* ctx, const Shape& s, const double* params, const BackwardTensors<T>& t) {
  const Params<T> p = ::projection::MakeParams<T>(params);
  const int64_t pixels = static_cast<int64_t>(s.image_size) * s.image_size;
  // dL/dS of every pixel once, instead of once per point whose window covers it.
  Tensor sum_grad_tensor;
  OP_REQUIRES_OK(ctx, ctx->allocate_temp(DataTypeToEnum<T>::value,
                                         TensorShape({s.batch, s.image_size, s.image_size}), &sum_grad_tensor));
  T* sum_grad = sum_grad_tensor.flat<T>().data();
  const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  Shard(workers->num_threads, workers->workers, s.batch * pixels, 4, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) sum_grad[k] = ::projection::SilhouetteSumGradient(t.mask[k], t.grad_mask[k]);
  });
  const int blocks = (s.points + kPointsPerBlock - 1) / kPointsPerBlock;
  const int64_t window = (2 * s.splat_radius + 1) * (2 * s.splat_radius + 1) * 4;
  const int64_t well = s.channels > 0 ? (2 * s.well_radius + 1) * (2 * s.well_radius + 1) * (30 + 6 * s.channels) : 0;
  Shard(workers->num_threads, workers->workers, static_cast<int64_t>(s.batch) * blocks,
        kPointsPerBlock * (40 + window + well), [&](int64_t begin, int64_t end) {
          for (int64_t unit = begin; unit < end; ++unit) {
            const int64_t b = unit / blocks;
            const int first = static_cast<int>(unit % blocks) * kPointsPerBlock;
            const int last = std::min(first + kPointsPerBlock, s.points);
            const T* sum_grad_b = sum_grad + b * pixels;
            for (int n = first; n < last; ++n) {
              const int64_t point = b * s.points + n;
              ::projection::PointGradient(
                  s, p, t.uvw + 3 * point, t.colours + point * s.channels,
                  [sum_grad_b](int pixel) { return sum_grad_b[pixel]; }, t.image + b * pixels * s.channels,
                  t.state + b * pixels * ::projection::kStateSize, t.grad_image + b * pixels * s.channels,
                  t.grad_uvw + 3 * point, t.grad_colours + point * s.channels);
            }
          }
        });
}

#define REGISTER_CPU(T)                                                                                           \
  REGISTER_KERNEL_BUILDER(Name("Projection").Device(DEVICE_CPU).TypeConstraint<T>("T"),                         \
                          Kernel<ProjectionOp<T>, ForwardTensors<T>, OnCpu>);                                     \
  REGISTER_KERNEL_BUILDER(Name("ProjectionGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),                     \
                          Kernel<ProjectionGradOp<T>, BackwardTensors<T>, OnCpu>);
REGISTER_CPU(float)
REGISTER_CPU(double)
#undef REGISTER_CPU

// ---------------------------------------------------------------------------------------------------------
// GPU kernels: the work in projection_kernel.cu, through the plain launch functions of projection_cuda.h.
#ifdef PROJECTION_WITH_CUDA

template <typename T>
struct CudaLaunch;

template <>
struct CudaLaunch<float> {
  static constexpr auto kForward = ProjectionForwardCudaF32;
  static constexpr auto kBackward = ProjectionBackwardCudaF32;
};

template <>
struct CudaLaunch<double> {
  static constexpr auto kForward = ProjectionForwardCudaF64;
  static constexpr auto kBackward = ProjectionBackwardCudaF64;
};

void* Stream(OpKernelContext* ctx) { return ctx->op_device_context()->stream()->platform_specific_handle().stream; }

template <typename T>
void Run(OnGpu, OpKernelContext* ctx, const Shape& s, const double* params, const ForwardTensors<T>& t) {
  const char* err = CudaLaunch<T>::kForward(Stream(ctx), s.batch, s.points, s.channels, s.image_size, s.splat_radius,
                                            s.well_radius, params, t.uvw, t.colours, t.mask, t.image, t.state);
  OP_REQUIRES(ctx, err == nullptr, errors::Internal("Projection: CUDA launch failed: ", err));
}

template <typename T>
void Run(OnGpu, OpKernelContext* ctx, const Shape& s, const double* params, const BackwardTensors<T>& t) {
  const char* err = CudaLaunch<T>::kBackward(Stream(ctx), s.batch, s.points, s.channels, s.image_size,
                                             s.splat_radius, s.well_radius, params, t.uvw, t.colours, t.mask,
                                             t.image, t.state, t.grad_mask, t.grad_image, t.grad_uvw, t.grad_colours);
  OP_REQUIRES(ctx, err == nullptr, errors::Internal("ProjectionGrad: CUDA launch failed: ", err));
}

#define REGISTER_GPU(T)                                                                                           \
  REGISTER_KERNEL_BUILDER(Name("Projection").Device(DEVICE_GPU).TypeConstraint<T>("T").HostMemory("params"),    \
                          Kernel<ProjectionOp<T>, ForwardTensors<T>, OnGpu>);                                     \
  REGISTER_KERNEL_BUILDER(Name("ProjectionGrad").Device(DEVICE_GPU).TypeConstraint<T>("T").HostMemory("params"),\
                          Kernel<ProjectionGradOp<T>, BackwardTensors<T>, OnGpu>);
REGISTER_GPU(float)
REGISTER_GPU(double)
#undef REGISTER_GPU

#endif  // PROJECTION_WITH_CUDA

}  // namespace
}  // namespace tensorflow
