// TensorFlow op `NnDistance`: nearest-neighbour indices between two batched point clouds.
//
//   a: float32 [B, N, 3], b: float32 [B, M, 3]
//   idx_ab: int32 [B, N]   idx_ab[k, i] = argmin_j |a[k, i] - b[k, j]|^2
//   idx_ba: int32 [B, M]   idx_ba[k, j] = argmin_i |b[k, j] - a[k, i]|^2
//
// Squared distances are computed in difference form, ((dx*dx + dy*dy) + dz*dz) without fused multiply-add,
// never through |a|^2 + |b|^2 - 2ab (which swaps near-tied neighbours); ties go to the lowest index. The op
// returns indices only and has no gradient: losses/chamfer.py gathers the partner points and recomputes the
// distances in TensorFlow, so the gradient is defined once for every backend (baseline §7.4, §10.3 use the
// squared nearest-neighbour distances of the original `tf_nndistance` CUDA op, §13.3).
//
// The CPU kernel shards query points over TensorFlow's intra-op thread pool. The GPU kernel (compiled only
// when NN_DISTANCE_WITH_CUDA is defined) forwards to nn_distance_kernel.cu through nn_distance_cuda.h.
#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

#ifdef NN_DISTANCE_WITH_CUDA
#include "nn_distance_cuda.h"
#include "xla/stream_executor/stream.h"
#endif

namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("NnDistance")
    .Input("a: float")
    .Input("b: float")
    .Output("idx_ab: int32")
    .Output("idx_ba: int32")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle a, b;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &a));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &b));
      DimensionHandle unused, batch;
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(a, 2), 3, &unused));
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(b, 2), 3, &unused));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(a, 0), c->Dim(b, 0), &batch));
      c->set_output(0, c->MakeShape({batch, c->Dim(a, 1)}));
      c->set_output(1, c->MakeShape({batch, c->Dim(b, 1)}));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Indices of nearest neighbours (squared Euclidean distance, lowest index on ties) from a to b and from b to a.
a: float32 [B, N, 3]. b: float32 [B, M, 3]. idx_ab: int32 [B, N]. idx_ba: int32 [B, M].
)doc");

// Shape checks shared by both kernels (the shape function cannot see unknown dimensions at graph build time).
absl::Status CheckShapes(const Tensor& a, const Tensor& b) {
  if (a.dims() != 3 || b.dims() != 3) {
    return tensorflow::errors::InvalidArgument("NnDistance: a and b must have rank 3 [B, N, 3], got shapes ",
                                               a.shape().DebugString(), " and ", b.shape().DebugString());
  }
  if (a.dim_size(2) != 3 || b.dim_size(2) != 3) {
    return tensorflow::errors::InvalidArgument("NnDistance: the last axis must have size 3 (x, y, z), got ",
                                               a.shape().DebugString(), " and ", b.shape().DebugString());
  }
  if (a.dim_size(0) != b.dim_size(0)) {
    return tensorflow::errors::InvalidArgument("NnDistance: batch sizes differ: ", a.dim_size(0), " vs ",
                                               b.dim_size(0));
  }
  if (a.dim_size(1) == 0 || b.dim_size(1) == 0) {
    return tensorflow::errors::InvalidArgument("NnDistance: empty point cloud (N = ", a.dim_size(1),
                                               ", M = ", b.dim_size(1), ")");
  }
  const int64_t int_max = std::numeric_limits<int>::max();
  if (a.dim_size(1) > int_max || b.dim_size(1) > int_max || a.dim_size(0) > int_max) {
    return tensorflow::errors::InvalidArgument("NnDistance: sizes must fit in int32");
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------------------
// CPU kernel.

constexpr int kLanes = 8;
typedef float FloatVec __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t IntVec __attribute__((vector_size(kLanes * sizeof(int32_t))));

// One batch element of the target cloud in structure-of-arrays layout, padded to a multiple of kLanes with
// +inf (a padded point is at distance +inf and never beats a real one).
struct SoaCloud {
  std::vector<float> x, y, z;

  SoaCloud(const float* points, int64_t m) {
    const int64_t padded = (m + kLanes - 1) / kLanes * kLanes;
    const float inf = std::numeric_limits<float>::infinity();
    x.assign(padded, inf);
    y.assign(padded, inf);
    z.assign(padded, inf);
    for (int64_t j = 0; j < m; ++j) {
      x[j] = points[3 * j];
      y[j] = points[3 * j + 1];
      z[j] = points[3 * j + 2];
    }
  }
};

inline FloatVec LoadVec(const float* p) {
  FloatVec v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Number of query points searched together: they share each load of the target (4 keeps the AVX2 clone's
// accumulators and loads within its 16 vector registers).
constexpr int kQueries = 4;

// index[q] = index of the point of `target` nearest to query point q, for the `count` <= kQueries points
// `query` [count, 3]. Lane l scans the points j = l (mod kLanes) and keeps its first strict minimum; the lanes
// are then merged by (distance, index), so the result is the lowest index among the nearest points.
// Compiled for AVX2 and for the baseline instruction set; the loader picks the one the CPU supports.
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target_clones("avx2", "default")))
#endif
void NearestBlock(const float* query, int count, const SoaCloud& target, int32_t* index) {
  FloatVec qx[kQueries], qy[kQueries], qz[kQueries], best[kQueries];
  IntVec best_j[kQueries], j;
  for (int l = 0; l < kLanes; ++l) j[l] = l;
  for (int q = 0; q < kQueries; ++q) {
    const float* p = query + 3 * (q < count ? q : count - 1);  // pad the block by repeating the last point
    qx[q] = FloatVec{} + p[0];
    qy[q] = FloatVec{} + p[1];
    qz[q] = FloatVec{} + p[2];
    best[q] = FloatVec{} + std::numeric_limits<float>::infinity();
    best_j[q] = j;
  }
  const int64_t padded = target.x.size();
  for (int64_t k = 0; k < padded; k += kLanes) {
    const FloatVec tx = LoadVec(&target.x[k]), ty = LoadVec(&target.y[k]), tz = LoadVec(&target.z[k]);
    for (int q = 0; q < kQueries; ++q) {
      const FloatVec dx = tx - qx[q], dy = ty - qy[q], dz = tz - qz[q];
      const FloatVec d = (dx * dx + dy * dy) + dz * dz;
      const IntVec closer = d < best[q];
      best[q] = closer ? d : best[q];
      best_j[q] = closer ? j : best_j[q];
    }
    j += kLanes;
  }
  for (int q = 0; q < count; ++q) {
    float d_min = best[q][0];
    int32_t j_min = best_j[q][0];
    for (int l = 1; l < kLanes; ++l) {
      if (best[q][l] < d_min || (best[q][l] == d_min && best_j[q][l] < j_min)) {
        d_min = best[q][l];
        j_min = best_j[q][l];
      }
    }
    index[q] = j_min;
  }
}

// index[k, i] = nearest point of target[k] to query[k, i], for query [B, n, 3], target [B, m, 3].
void NearestAll(OpKernelContext* ctx, const float* query, int64_t batch, int64_t n, const float* target,
                int64_t m, int32_t* index) {
  std::vector<SoaCloud> clouds;
  clouds.reserve(batch);
  for (int64_t k = 0; k < batch; ++k) clouds.emplace_back(target + k * m * 3, m);
  const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  const int64_t blocks = (n + kQueries - 1) / kQueries;  // query blocks per batch element
  // Cost of one block in Shard's units (about one cycle): roughly 10 vector operations per query and kLanes
  // target points.
  const int64_t cost_per_block = 10 * kQueries * (m / kLanes + 1);
  tensorflow::Shard(workers->num_threads, workers->workers, batch * blocks, cost_per_block,
                    [&](int64_t begin, int64_t end) {
                      for (int64_t u = begin; u < end; ++u) {
                        const int64_t k = u / blocks, first = (u % blocks) * kQueries;
                        const int count = static_cast<int>(std::min<int64_t>(kQueries, n - first));
                        const int64_t offset = k * n + first;
                        NearestBlock(query + 3 * offset, count, clouds[k], index + offset);
                      }
                    });
}

absl::Status CheckFinite(const Tensor& t, const char* name) {
  const auto flat = t.flat<float>();
  for (int64_t i = 0; i < flat.size(); ++i) {
    if (!std::isfinite(flat(i))) {
      return tensorflow::errors::InvalidArgument("NnDistance: ", name, " contains NaN or Inf (flat index ", i,
                                                 ")");
    }
  }
  return absl::OkStatus();
}

class NnDistanceCpuOp : public OpKernel {
 public:
  explicit NnDistanceCpuOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& a = ctx->input(0);
    const Tensor& b = ctx->input(1);
    OP_REQUIRES_OK(ctx, CheckShapes(a, b));
    OP_REQUIRES_OK(ctx, CheckFinite(a, "a"));
    OP_REQUIRES_OK(ctx, CheckFinite(b, "b"));
    const int64_t batch = a.dim_size(0), n = a.dim_size(1), m = b.dim_size(1);
    Tensor* idx_ab = nullptr;
    Tensor* idx_ba = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({batch, n}), &idx_ab));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({batch, m}), &idx_ba));
    const float* pa = a.flat<float>().data();
    const float* pb = b.flat<float>().data();
    NearestAll(ctx, pa, batch, n, pb, m, idx_ab->flat<int32_t>().data());
    NearestAll(ctx, pb, batch, m, pa, n, idx_ba->flat<int32_t>().data());
  }
};

REGISTER_KERNEL_BUILDER(Name("NnDistance").Device(DEVICE_CPU), NnDistanceCpuOp);

// ---------------------------------------------------------------------------------------------------------
// GPU kernel: shape checks here, the search in nn_distance_kernel.cu. Inputs are not scanned for NaN on the
// device; losses/chamfer.py checks them before calling the op.
#ifdef NN_DISTANCE_WITH_CUDA

class NnDistanceGpuOp : public OpKernel {
 public:
  explicit NnDistanceGpuOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& a = ctx->input(0);
    const Tensor& b = ctx->input(1);
    OP_REQUIRES_OK(ctx, CheckShapes(a, b));
    const int batch = a.dim_size(0), n = a.dim_size(1), m = b.dim_size(1);
    Tensor* idx_ab = nullptr;
    Tensor* idx_ba = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({batch, n}), &idx_ab));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({batch, m}), &idx_ba));
    void* stream = ctx->op_device_context()->stream()->platform_specific_handle().stream;
    const float* pa = a.flat<float>().data();
    const float* pb = b.flat<float>().data();
    const char* err = NnDistanceCudaLaunch(stream, batch, n, m, pa, pb, idx_ab->flat<int32_t>().data());
    if (err == nullptr) err = NnDistanceCudaLaunch(stream, batch, m, n, pb, pa, idx_ba->flat<int32_t>().data());
    OP_REQUIRES(ctx, err == nullptr, tensorflow::errors::Internal("NnDistance: CUDA launch failed: ", err));
  }
};

REGISTER_KERNEL_BUILDER(Name("NnDistance").Device(::tensorflow::DEVICE_GPU), NnDistanceGpuOp);

#endif  // NN_DISTANCE_WITH_CUDA

}  // namespace
