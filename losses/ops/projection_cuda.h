// Interface between the TensorFlow-facing ops (projection_op.cc, built by the host compiler) and the CUDA
// kernels (projection_kernel.cu, built by nvcc). Plain C functions on raw pointers, with no TensorFlow and no
// CUDA type, so that nvcc never parses TensorFlow's headers and bench/bench_cuda_kernels.py can call them
// through ctypes on PyTorch tensors.
//
// Tensors are dense, row-major, in device memory: uvw [batch, points, 3], colours [batch, points, channels],
// mask [batch, size, size], image [batch, size, size, channels], colour_state [batch, size, size, 3] and the
// gradients in the shapes of what they differentiate. `params` is a host array of the 6 scalars of
// projection_math.h (ParamIndex order). The work is queued on `stream` (a cudaStream_t; nullptr for the
// default stream). Each function returns nullptr on success, else the CUDA error text.
#ifndef LOSSES_OPS_PROJECTION_CUDA_H_
#define LOSSES_OPS_PROJECTION_CUDA_H_

#ifdef __cplusplus
extern "C" {
#endif

// Forward pass of the `Projection` op: mask, image and colour_state from uvw and colours.
const char* ProjectionForwardCudaF32(void* stream, int batch, int points, int channels, int size, int splat_radius,
                                     int well_radius, const double* params, const float* uvw, const float* colours,
                                     float* mask, float* image, float* colour_state);
const char* ProjectionForwardCudaF64(void* stream, int batch, int points, int channels, int size, int splat_radius,
                                     int well_radius, const double* params, const double* uvw,
                                     const double* colours, double* mask, double* image, double* colour_state);

// Backward pass (`ProjectionGrad`): grad_uvw and grad_colours from the forward outputs and grad_mask, grad_image.
const char* ProjectionBackwardCudaF32(void* stream, int batch, int points, int channels, int size,
                                      int splat_radius, int well_radius, const double* params, const float* uvw,
                                      const float* colours, const float* mask, const float* image,
                                      const float* colour_state, const float* grad_mask, const float* grad_image,
                                      float* grad_uvw, float* grad_colours);
const char* ProjectionBackwardCudaF64(void* stream, int batch, int points, int channels, int size,
                                      int splat_radius, int well_radius, const double* params, const double* uvw,
                                      const double* colours, const double* mask, const double* image,
                                      const double* colour_state, const double* grad_mask,
                                      const double* grad_image, double* grad_uvw, double* grad_colours);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // LOSSES_OPS_PROJECTION_CUDA_H_
