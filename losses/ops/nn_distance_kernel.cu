// CUDA kernel of the `NnDistance` op: brute-force nearest-neighbour search, one thread per query point.
// Compiled by nvcc; includes only the CUDA runtime (see nn_distance_cuda.h for why).
//
// Grid: x covers the n query points in blocks of kThreads, y is the batch index, so small batches still fill
// the GPU (the original kernel used a fixed grid of 16 blocks). Each block stages the target cloud through
// shared memory in tiles of kThreads points. Distances use the difference form (q - t)^2 and the first
// strictly smaller distance wins, which gives the lowest index on ties, as the CPU kernel does.
#include <cuda_runtime.h>

#include "nn_distance_cuda.h"

namespace {

constexpr int kThreads = 256;

__global__ void NearestKernel(int n, int m, const float* __restrict__ query,
                              const float* __restrict__ target, int* __restrict__ index) {
  __shared__ float tile[kThreads * 3];
  const int b = blockIdx.y;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const float* q = query + (static_cast<long long>(b) * n + i) * 3;
  const float* t = target + static_cast<long long>(b) * m * 3;
  const bool active = i < n;
  const float qx = active ? q[0] : 0.f, qy = active ? q[1] : 0.f, qz = active ? q[2] : 0.f;
  float best = __int_as_float(0x7f800000);  // +inf
  int best_j = 0;
  for (int start = 0; start < m; start += kThreads) {
    const int count = min(kThreads, m - start);
    __syncthreads();
    for (int k = threadIdx.x; k < count * 3; k += blockDim.x) tile[k] = t[start * 3 + k];
    __syncthreads();
    for (int k = 0; k < count; ++k) {
      const float dx = __fsub_rn(qx, tile[3 * k]);
      const float dy = __fsub_rn(qy, tile[3 * k + 1]);
      const float dz = __fsub_rn(qz, tile[3 * k + 2]);
      // No fused multiply-add: the same rounding as the CPU kernel, so both pick the same neighbour.
      const float d = __fadd_rn(__fadd_rn(__fmul_rn(dx, dx), __fmul_rn(dy, dy)), __fmul_rn(dz, dz));
      if (d < best) {
        best = d;
        best_j = start + k;
      }
    }
  }
  if (active) index[static_cast<long long>(b) * n + i] = best_j;
}

}  // namespace

const char* NnDistanceCudaLaunch(void* stream, int batch, int n, int m, const float* query,
                                 const float* target, int* index) {
  const dim3 grid((n + kThreads - 1) / kThreads, batch);
  NearestKernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(n, m, query, target, index);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}
