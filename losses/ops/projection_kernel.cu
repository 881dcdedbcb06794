// CUDA kernels of the `Projection` op (soft silhouette and soft colour image, baseline §5.3-5.4). Compiled by
// nvcc; includes only the CUDA runtime and the shared arithmetic of projection_math.h (see projection_cuda.h).
//
// Forward, four launches: Start (zero the outputs), Splat (one thread per point: its silhouette window by
// atomicAdd, and for the colour image the largest logit and the count of each of its wells by atomic max and
// add), Accumulate (one thread per point: Z and Σ e^(l - shift)·colour of its wells by atomicAdd), Finish (one
// thread per pixel: tanh, the softmax denominator and the division). Backward, one launch: Gradient, one thread
// per point, which reads its window and wells and writes its own gradients (no atomics). Atomic sums make the
// float rounding depend on the order in which threads arrive, unlike the CPU kernel's fixed point order.
#include <cuda_runtime.h>

#include "projection_cuda.h"
#include "projection_math.h"

namespace {

using projection::kStateSize;
using projection::Params;
using projection::Shape;

constexpr int kThreads = 256;

__device__ void AtomicMax(float* address, float value) {
  int* bits = reinterpret_cast<int*>(address);
  int old = *bits;
  while (__int_as_float(old) < value) {
    const int assumed = old;
    old = atomicCAS(bits, assumed, __float_as_int(value));
    if (old == assumed) break;
  }
}

__device__ void AtomicMax(double* address, double value) {
  unsigned long long* bits = reinterpret_cast<unsigned long long*>(address);
  unsigned long long old = *bits;
  while (__longlong_as_double(old) < value) {
    const unsigned long long assumed = old;
    old = atomicCAS(bits, assumed, static_cast<unsigned long long>(__double_as_longlong(value)));
    if (old == assumed) break;
  }
}

__device__ long long ThreadIndex() { return static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; }

__host__ __device__ long long Pixels(const Shape& s) { return static_cast<long long>(s.image_size) * s.image_size; }

template <typename T>
__global__ void StartKernel(Shape s, T* mask, T* image, T* state) {
  const long long k = ThreadIndex();
  if (k >= s.batch * Pixels(s)) return;
  mask[k] = T(0);
  for (int c = 0; c < s.channels; ++c) image[k * s.channels + c] = T(0);
  state[kStateSize * k] = s.channels > 0 ? -T(INFINITY) : T(0);
  state[kStateSize * k + 1] = state[kStateSize * k + 2] = T(0);
}

template <typename T>
__global__ void SplatKernel(Shape s, Params<T> p, const T* uvw, T* mask, T* state) {
  const long long k = ThreadIndex();
  if (k >= static_cast<long long>(s.batch) * s.points) return;
  const long long b = k / s.points, pixels = Pixels(s);
  const T* point = uvw + 3 * k;
  T* mask_b = mask + b * pixels;
  T* state_b = state + b * pixels * kStateSize;
  if (projection::IsNan(point[0]) || projection::IsNan(point[1])) {
    for (long long q = 0; q < pixels; ++q) atomicAdd(mask_b + q, point[0] + point[1]);  // the mask becomes NaN
  } else {
    projection::ForEachSplatPixel(s, p, point[0], point[1], 0, s.image_size,
                                  [&](int pixel, T weight) { atomicAdd(mask_b + pixel, weight); });
  }
  if (s.channels == 0) return;
  if (projection::IsNan(point[2])) {
    for (long long q = 0; q < pixels; ++q) atomicAdd(state_b + kStateSize * q + 1, point[2]);  // image NaN
    return;
  }
  projection::ForEachWellPixel(s, p, point[0], point[1], point[2], 0, s.image_size, [&](int pixel, T logit) {
    T* st = state_b + kStateSize * pixel;
    AtomicMax(st, logit);
    atomicAdd(st + 1, T(1));
  });
}

template <typename T>
__global__ void AccumulateKernel(Shape s, Params<T> p, const T* uvw, const T* colours, T* image, T* state) {
  const long long k = ThreadIndex();
  if (k >= static_cast<long long>(s.batch) * s.points) return;
  const long long b = k / s.points, pixels = Pixels(s);
  const T* point = uvw + 3 * k;
  const T* colour = colours + k * s.channels;
  T* image_b = image + b * pixels * s.channels;
  T* state_b = state + b * pixels * kStateSize;
  projection::ForEachWellPixel(s, p, point[0], point[1], point[2], 0, s.image_size, [&](int pixel, T logit) {
    T* st = state_b + kStateSize * pixel;
    const T e = projection::ShiftedExp(logit, st[0]);
    atomicAdd(st + 2, e);
    for (int c = 0; c < s.channels; ++c) atomicAdd(image_b + static_cast<long long>(pixel) * s.channels + c, e * colour[c]);
  });
}

template <typename T>
__global__ void FinishKernel(Shape s, Params<T> p, T* mask, T* image, T* state) {
  const long long k = ThreadIndex();
  if (k >= s.batch * Pixels(s)) return;
  projection::FinishPixel(s, p, mask + k, image + k * s.channels, state + kStateSize * k);
}

template <typename T>
__global__ void GradientKernel(Shape s, Params<T> p, const T* uvw, const T* colours, const T* mask,
                               const T* image, const T* state, const T* grad_mask, const T* grad_image,
                               T* grad_uvw, T* grad_colours) {
  const long long k = ThreadIndex();
  if (k >= static_cast<long long>(s.batch) * s.points) return;
  const long long b = k / s.points, pixels = Pixels(s);
  const T* mask_b = mask + b * pixels;
  const T* grad_mask_b = grad_mask + b * pixels;
  projection::PointGradient(
      s, p, uvw + 3 * k, colours + k * s.channels,
      [&](int pixel) { return projection::SilhouetteSumGradient(mask_b[pixel], grad_mask_b[pixel]); },
      image + b * pixels * s.channels, state + b * pixels * kStateSize, grad_image + b * pixels * s.channels,
      grad_uvw + 3 * k, grad_colours + k * s.channels);
}

int Blocks(long long count) { return static_cast<int>((count + kThreads - 1) / kThreads); }

const char* LastError() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

// Why a call's sizes are invalid, or nullptr.
const char* CheckShape(const Shape& s) {
  if (s.batch < 0 || s.points < 0 || s.channels < 0 || s.image_size < 1 || s.well_radius < 0) {
    return "Projection CUDA: negative size or image_size < 1";
  }
  if (s.splat_radius < 0 || s.splat_radius > projection::kMaxSplatRadius) {
    return "Projection CUDA: splat_radius outside [0, 32]";
  }
  return nullptr;
}

template <typename T>
const char* Forward(void* stream, const Shape& s, const double* params, const T* uvw, const T* colours, T* mask,
                    T* image, T* state) {
  if (const char* err = CheckShape(s)) return err;
  const Params<T> p = projection::MakeParams<T>(params);
  const cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
  const long long pixels = s.batch * Pixels(s), points = static_cast<long long>(s.batch) * s.points;
  if (pixels == 0) return nullptr;
  StartKernel<T><<<Blocks(pixels), kThreads, 0, cuda_stream>>>(s, mask, image, state);
  if (points > 0) {
    SplatKernel<T><<<Blocks(points), kThreads, 0, cuda_stream>>>(s, p, uvw, mask, state);
    if (s.channels > 0) {
      AccumulateKernel<T><<<Blocks(points), kThreads, 0, cuda_stream>>>(s, p, uvw, colours, image, state);
    }
  }
  FinishKernel<T><<<Blocks(pixels), kThreads, 0, cuda_stream>>>(s, p, mask, image, state);
  return LastError();
}

template <typename T>
const char* Backward(void* stream, const Shape& s, const double* params, const T* uvw, const T* colours,
                     const T* mask, const T* image, const T* state, const T* grad_mask, const T* grad_image,
                     T* grad_uvw, T* grad_colours) {
  if (const char* err = CheckShape(s)) return err;
  const long long points = static_cast<long long>(s.batch) * s.points;
  if (points == 0) return nullptr;
  GradientKernel<T><<<Blocks(points), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      s, projection::MakeParams<T>(params), uvw, colours, mask, image, state, grad_mask, grad_image, grad_uvw,
      grad_colours);
  return LastError();
}

}  // namespace

extern "C" {

const char* ProjectionForwardCudaF32(void* stream, int batch, int points, int channels, int size, int splat_radius,
                                     int well_radius, const double* params, const float* uvw, const float* colours,
                                     float* mask, float* image, float* colour_state) {
  return Forward(stream, Shape{batch, points, channels, size, splat_radius, well_radius}, params, uvw, colours,
                 mask, image, colour_state);
}

const char* ProjectionForwardCudaF64(void* stream, int batch, int points, int channels, int size, int splat_radius,
                                     int well_radius, const double* params, const double* uvw,
                                     const double* colours, double* mask, double* image, double* colour_state) {
  return Forward(stream, Shape{batch, points, channels, size, splat_radius, well_radius}, params, uvw, colours,
                 mask, image, colour_state);
}

const char* ProjectionBackwardCudaF32(void* stream, int batch, int points, int channels, int size,
                                      int splat_radius, int well_radius, const double* params, const float* uvw,
                                      const float* colours, const float* mask, const float* image,
                                      const float* colour_state, const float* grad_mask, const float* grad_image,
                                      float* grad_uvw, float* grad_colours) {
  return Backward(stream, Shape{batch, points, channels, size, splat_radius, well_radius}, params, uvw, colours,
                  mask, image, colour_state, grad_mask, grad_image, grad_uvw, grad_colours);
}

const char* ProjectionBackwardCudaF64(void* stream, int batch, int points, int channels, int size,
                                      int splat_radius, int well_radius, const double* params, const double* uvw,
                                      const double* colours, const double* mask, const double* image,
                                      const double* colour_state, const double* grad_mask,
                                      const double* grad_image, double* grad_uvw, double* grad_colours) {
  return Backward(stream, Shape{batch, points, channels, size, splat_radius, well_radius}, params, uvw, colours,
                  mask, image, colour_state, grad_mask, grad_image, grad_uvw, grad_colours);
}

}  // extern "C"
