// Per-point and per-pixel arithmetic of the `Projection` op (soft silhouette and soft colour image, baseline
// §5.3-5.4), shared by the CPU kernels (projection_op.cc) and the CUDA kernels (projection_kernel.cu). Plain
// C++ with no TensorFlow and no CUDA type; under nvcc every function is also a device function. The kernels
// differ only in how they split the work and add up contributions (row bands on the CPU, atomics on the GPU).
//
// Conventions of model/projection.py: uvw[..., 0] = u is compared with the row index i, uvw[..., 1] = v with
// the column index j, pixel (i, j) is centred at (u, v) = (i, j); w is the positive depth. Each expression is
// written as the dense form (projection.silhouette_faithful / colour_faithful) writes it, in the element type T.
//
// Silhouette: M = tanh(S), S[i, j] = Σ_n g(u_n - i) g(v_n - j), g(δ) = exp(-δ²/(2σ²)), each point splatted on
// the (2·splat_radius + 1)² pixels around (round(u_n), round(v_n)).
// Colour: a point is in the well of pixel (i, j) when |u - i| <= r and |v - j| <= r (r = well_radius) and
// visible when d = clip(w + shift, 0, max_depth) != max_depth; with l = beta / (d + eps), a pixel's visible
// in-well points get the weights e^(l - m) / D, m their largest logit, D = Z + renorm_eps·(Z + (N - count)·
// e^(l_out - m)), Z = Σ_in e^(l - m), l_out the logit of d = max_depth (model/projection.colour_fast derives
// this from the baseline's masked, renormalised softmax over all N points); pixels with no such point are 0.
#ifndef LOSSES_OPS_PROJECTION_MATH_H_
#define LOSSES_OPS_PROJECTION_MATH_H_

#include <math.h>

#ifdef __CUDACC__
#define PROJECTION_HD __host__ __device__ __forceinline__
#else
#define PROJECTION_HD inline
#endif

namespace projection {

// Order of the `params` input; model/projection.py (_fused_params) writes the vector in this order.
enum ParamIndex { kSigmaSq = 0, kBeta, kDepthShift, kMaxDepth, kSoftmaxEps, kRenormEps, kNumParams };

// Largest silhouette window half-width the kernels accept (σ² up to about 27 px², projection.splat_radius).
constexpr int kMaxSplatRadius = 32;

// Values per pixel of the colour state: the softmax shift m, the number of visible in-well points, D.
constexpr int kStateSize = 3;

// The scalars of §5.3-5.4 in the element type.
template <typename T>
struct Params {
  T sigma_sq;     // σ² of the silhouette's Gaussian, px²
  T beta;         // softmax sharpness
  T depth_shift;  // w' = w + depth_shift
  T max_depth;    // d = clip(w', 0, max_depth); d == max_depth marks a point outside every well
  T softmax_eps;  // logit = beta / (d + softmax_eps)
  T renorm_eps;   // prob / (Σ prob + renorm_eps)
  T splat_step;   // exp(-1/σ²), derived: see SplatWeights
  T logit_outside;  // beta / (max_depth + softmax_eps), derived: the logit of every point outside a well
};

PROJECTION_HD float Exp(float x) { return expf(x); }
PROJECTION_HD double Exp(double x) { return exp(x); }

template <typename T>
Params<T> MakeParams(const double* values) {
  const T sigma_sq = static_cast<T>(values[kSigmaSq]), beta = static_cast<T>(values[kBeta]);
  const T max_depth = static_cast<T>(values[kMaxDepth]), softmax_eps = static_cast<T>(values[kSoftmaxEps]);
  return Params<T>{sigma_sq,
                   beta,
                   static_cast<T>(values[kDepthShift]),
                   max_depth,
                   softmax_eps,
                   static_cast<T>(values[kRenormEps]),
                   Exp(T(-1) / sigma_sq),
                   beta / (max_depth + softmax_eps)};
}

// Sizes of one call: B batch, N points, C colour channels (0: silhouette only), H = W = image_size, the
// silhouette's window half-width (projection.splat_radius, <= kMaxSplatRadius) and the colour well's.
struct Shape {
  int batch;
  int points;
  int channels;
  int image_size;
  int splat_radius;
  int well_radius;
};

PROJECTION_HD float Rint(float x) { return rintf(x); }  // round half to even, as tf.round
PROJECTION_HD double Rint(double x) { return rint(x); }
PROJECTION_HD float Tanh(float x) { return tanhf(x); }
PROJECTION_HD double Tanh(double x) { return tanh(x); }
PROJECTION_HD float Abs(float x) { return fabsf(x); }
PROJECTION_HD double Abs(double x) { return fabs(x); }
template <typename T>
PROJECTION_HD bool IsNan(T x) {
  return x != x;
}
PROJECTION_HD int MaxInt(int a, int b) { return a > b ? a : b; }
PROJECTION_HD int MinInt(int a, int b) { return a < b ? a : b; }

// Pixel indices round(coord) - radius ... round(coord) + radius that lie on an image of `size` pixels, as
// [*first, *last]. Returns false when none does (also for infinite or NaN coordinates): the comparison is made
// in T, so a far-away coordinate never reaches the conversion to int.
template <typename T>
PROJECTION_HD bool WindowOnImage(T coord, int radius, int size, int* first, int* last) {
  const T centre = Rint(coord);
  if (!(centre - T(radius) <= T(size - 1)) || !(centre + T(radius) >= T(0))) return false;
  const int c = static_cast<int>(centre);
  *first = MaxInt(c - radius, 0);
  *last = MinInt(c + radius, size - 1);
  return true;
}

// e^(logit - shift), the softmax weight of a logit before normalisation; 1 for the pixel's largest logit, which
// in a sparse cloud is most of them.
template <typename T>
PROJECTION_HD T ShiftedExp(T logit, T shift) {
  return logit == shift ? T(1) : Exp(logit - shift);
}

// Indices i on the image with |coord - i| <= radius (a colour well along one axis), as [*first, *last].
template <typename T>
PROJECTION_HD bool WellOnImage(T coord, int radius, int size, int* first, int* last) {
  int lo, hi;
  if (!WindowOnImage(coord, radius, size, &lo, &hi)) return false;
  while (lo <= hi && !(Abs(coord - T(lo)) <= T(radius))) ++lo;
  while (hi >= lo && !(Abs(coord - T(hi)) <= T(radius))) --hi;
  *first = lo;
  *last = hi;
  return lo <= hi;
}

// weights[i - first] = g(coord - i) = exp(-(coord - i)² / (2σ²)) for i = first..last, the pixels of one axis
// of a point's splat window (all within splat_radius of c = round(coord)). Instead of one exponential per pixel
// it takes g at c and walks outwards by the ratios of neighbours, g(δ - 1) / g(δ) = exp((2δ - 1) / (2σ²)) and
// g(δ + 1) / g(δ) = exp(-(2δ + 1) / (2σ²)), each of which changes by the factor exp(-1/σ²) per pixel: three
// exponentials per axis. Every factor is <= 1, so nothing overflows; the relative error grows by a few ulps
// per pixel from the centre (below 1e-6 in float32 at the window's edge, where g itself is below 1e-10).
template <typename T>
PROJECTION_HD void SplatWeights(T coord, int first, int last, const Params<T>& p, T* weights) {
  const T centre = Rint(coord);
  const int c = static_cast<int>(centre);
  const T t = coord - centre, two_sigma_sq = T(2) * p.sigma_sq;
  const T at_centre = Exp(-(t * t) / two_sigma_sq);
  if (c >= first && c <= last) weights[c - first] = at_centre;
  T value = at_centre, ratio = Exp((T(2) * t - T(1)) / two_sigma_sq);
  for (int i = c + 1; i <= last; ++i) {
    value *= ratio;
    ratio *= p.splat_step;
    if (i >= first) weights[i - first] = value;
  }
  value = at_centre;
  ratio = Exp(-(T(2) * t + T(1)) / two_sigma_sq);
  for (int i = c - 1; i >= first; --i) {
    value *= ratio;
    ratio *= p.splat_step;
    if (i <= last) weights[i - first] = value;
  }
}

// d g(coord - index) / d coord, given g: -(coord - index) / σ² · g.
template <typename T>
PROJECTION_HD T SplatSlope(T coord, int index, T weight, const Params<T>& p) {
  return -(coord - T(index)) / p.sigma_sq * weight;
}

// d = clip(w + depth_shift, 0, max_depth).
template <typename T>
PROJECTION_HD T ClippedDepth(T w, const Params<T>& p) {
  const T d = w + p.depth_shift;
  return d < T(0) ? T(0) : (d > p.max_depth ? p.max_depth : d);
}

// The softmax logit beta / (d + softmax_eps).
template <typename T>
PROJECTION_HD T Logit(T d, const Params<T>& p) {
  return p.beta / (d + p.softmax_eps);
}

// d logit / d w: -beta / (d + eps)², times the clip's gradient (1 where w + shift lies in [0, max_depth]).
template <typename T>
PROJECTION_HD T LogitSlope(T w, T d, const Params<T>& p) {
  const T shifted = w + p.depth_shift;
  if (shifted < T(0) || shifted > p.max_depth) return T(0);
  const T denominator = d + p.softmax_eps;
  return -p.beta / (denominator * denominator);
}

// Calls visit(pixel, weight) with weight = g(u - i)·g(v - j) for every pixel (i, j) of the point's splat window
// that lies on the image in rows [row_begin, row_end); pixel = i·W + j. The caller handles NaN u, v.
template <typename T, typename Visit>
PROJECTION_HD void ForEachSplatPixel(const Shape& s, const Params<T>& p, T u, T v, int row_begin, int row_end,
                                     Visit visit) {
  int i0, i1, j0, j1;
  if (!WindowOnImage(u, s.splat_radius, s.image_size, &i0, &i1) ||
      !WindowOnImage(v, s.splat_radius, s.image_size, &j0, &j1)) {
    return;
  }
  i0 = MaxInt(i0, row_begin);
  i1 = MinInt(i1, row_end - 1);
  if (i0 > i1) return;
  T weight_u[2 * kMaxSplatRadius + 1], weight_v[2 * kMaxSplatRadius + 1];
  SplatWeights(u, i0, i1, p, weight_u);
  SplatWeights(v, j0, j1, p, weight_v);
  for (int i = i0; i <= i1; ++i) {
    for (int j = j0; j <= j1; ++j) visit(i * s.image_size + j, weight_u[i - i0] * weight_v[j - j0]);
  }
}

// Calls visit(pixel, logit) for every pixel in rows [row_begin, row_end) whose colour well holds the point
// (u, v, w) visibly. A NaN u or v is outside every well, as in the dense form; the caller handles a NaN w.
template <typename T, typename Visit>
PROJECTION_HD void ForEachWellPixel(const Shape& s, const Params<T>& p, T u, T v, T w, int row_begin,
                                    int row_end, Visit visit) {
  if (IsNan(u) || IsNan(v)) return;
  const T d = ClippedDepth(w, p);
  if (d == p.max_depth) return;
  int i0, i1, j0, j1;
  if (!WellOnImage(u, s.well_radius, s.image_size, &i0, &i1) ||
      !WellOnImage(v, s.well_radius, s.image_size, &j0, &j1)) {
    return;
  }
  const T logit = Logit(d, p);
  for (int i = MaxInt(i0, row_begin); i <= MinInt(i1, row_end - 1); ++i) {
    for (int j = j0; j <= j1; ++j) visit(i * s.image_size + j, logit);
  }
}

// Turns a pixel's sums into its outputs: the silhouette sum into tanh; with channels, Z (state[2]) into the
// denominator D and Σ e^(l - m)·colour (image[0..C)) into the colour, or everything into 0 without a point.
template <typename T>
PROJECTION_HD void FinishPixel(const Shape& s, const Params<T>& p, T* mask, T* image, T* state) {
  if (*mask != T(0)) *mask = Tanh(*mask);  // most pixels of a sparse cloud's image are 0 = tanh(0)
  if (s.channels == 0) return;
  if (state[1] == T(0)) {  // no visible point in the well: background 0 (§5.4 step 6)
    state[0] = state[2] = T(0);
    return;
  }
  // The N - count points outside the well: below e^-60 their weight changes D (>= 1) by less than float64's
  // rounding for any N < 1e18, so the exponential is skipped (a NaN count still makes D NaN).
  const T gap = p.logit_outside - state[0];
  const T outside = (T(s.points) - state[1]) * (gap > T(-60) ? Exp(gap) : T(0));
  state[2] = state[2] + p.renorm_eps * (state[2] + outside);
  for (int c = 0; c < s.channels; ++c) image[c] /= state[2];
}

// dL/dS at a pixel, from the silhouette M = tanh(S) and dL/dM there: dL/dM · (1 - M²).
template <typename T>
PROJECTION_HD T SilhouetteSumGradient(T mask, T grad_mask) {
  return grad_mask * (T(1) - mask * mask);
}

// Gradients of one point with respect to (u, v, w) and its colour, from its batch element's dL/dS
// (sum_grad(pixel), see SilhouetteSumGradient), colour image [H, W, C] and state [H, W, 3], and dL/dimage
// (grad_image [H, W, C]). A point with a NaN coordinate gets NaN gradients.
template <typename T, typename SumGradient>
PROJECTION_HD void PointGradient(const Shape& s, const Params<T>& p, const T* point, const T* colour,
                                 SumGradient sum_grad, const T* image, const T* state, const T* grad_image,
                                 T* grad_point, T* grad_colour) {
  const T u = point[0], v = point[1], w = point[2];
  if (IsNan(u) || IsNan(v) || IsNan(w)) {
    const T nan = u + v + w;
    grad_point[0] = grad_point[1] = grad_point[2] = nan;
    for (int c = 0; c < s.channels; ++c) grad_colour[c] = nan;
    return;
  }
  T grad_u = T(0), grad_v = T(0), grad_logit = T(0);
  int i0, i1, j0, j1;
  if (WindowOnImage(u, s.splat_radius, s.image_size, &i0, &i1) &&
      WindowOnImage(v, s.splat_radius, s.image_size, &j0, &j1)) {
    T weight_u[2 * kMaxSplatRadius + 1], weight_v[2 * kMaxSplatRadius + 1], slope_v[2 * kMaxSplatRadius + 1];
    SplatWeights(u, i0, i1, p, weight_u);
    SplatWeights(v, j0, j1, p, weight_v);
    for (int j = j0; j <= j1; ++j) slope_v[j - j0] = SplatSlope(v, j, weight_v[j - j0], p);
    for (int i = i0; i <= i1; ++i) {
      const T slope_u = SplatSlope(u, i, weight_u[i - i0], p);
      T sum_u = T(0), sum_v = T(0);
      for (int j = j0; j <= j1; ++j) {
        const T g = sum_grad(i * s.image_size + j);
        sum_u += g * weight_v[j - j0];
        sum_v += g * slope_v[j - j0];
      }
      grad_u += slope_u * sum_u;
      grad_v += weight_u[i - i0] * sum_v;
    }
  }
  for (int c = 0; c < s.channels; ++c) grad_colour[c] = T(0);
  if (s.channels > 0) {
    ForEachWellPixel(s, p, u, v, w, 0, s.image_size, [&](int pixel, T logit) {
      const T* st = state + kStateSize * pixel;
      const T weight = ShiftedExp(logit, st[0]) / st[2];
      const T* g = grad_image + pixel * s.channels;
      const T* out = image + pixel * s.channels;
      T dot_colour = T(0), dot_image = T(0);
      for (int c = 0; c < s.channels; ++c) {
        grad_colour[c] += weight * g[c];
        dot_colour += g[c] * colour[c];
        dot_image += g[c] * out[c];
      }
      // d image / d logit = weight · (colour - (1 + renorm_eps) · image)
      grad_logit += weight * (dot_colour - (T(1) + p.renorm_eps) * dot_image);
    });
  }
  grad_point[0] = grad_u;
  grad_point[1] = grad_v;  // the colour image adds nothing to u, v: its well is a hard comparison (§5.4)
  grad_point[2] = grad_logit * LogitSlope(w, ClippedDepth(w, p), p);
}

}  // namespace projection

#endif  // LOSSES_OPS_PROJECTION_MATH_H_
