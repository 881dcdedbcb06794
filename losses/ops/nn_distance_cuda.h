// Interface between the TensorFlow-facing op (nn_distance_op.cc, built by the host compiler) and the CUDA
// kernel (nn_distance_kernel.cu, built by nvcc). It mentions no TensorFlow and no CUDA type, so that each
// side includes only what it needs (nvcc does not parse TensorFlow's headers); the launch function has C
// linkage, so that bench/bench_cuda_kernels.py can also call it through ctypes on PyTorch tensors.
#ifndef LOSSES_OPS_NN_DISTANCE_CUDA_H_
#define LOSSES_OPS_NN_DISTANCE_CUDA_H_

#ifdef __cplusplus
extern "C" {
#endif

// For every point of `query` [batch, n, 3] writes into `index` [batch, n] the index of its nearest point of
// `target` [batch, m, 3] (squared distance in difference form, lowest index on ties). All pointers are device
// memory; the work is queued on `stream` (a cudaStream_t). Returns nullptr on success, else the CUDA error text.
const char* NnDistanceCudaLaunch(void* stream, int batch, int n, int m, const float* query,
                                 const float* target, int* index);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // LOSSES_OPS_NN_DISTANCE_CUDA_H_
