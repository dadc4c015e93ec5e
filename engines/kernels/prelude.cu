// Shared macros for the lgnm-live kernels (included by farneback.cu and encode.cu).
//
// Every kernel is written as a body over one output pixel (x, y) of batch item z.
// Under nvcc/NVRTC that body runs once per thread (blockIdx.z = batch item); under a
// plain C++ compiler (FB_FOR_PIXELS becomes three loops) the same source builds a
// host library, which is how the kernels are tested on machines without a GPU.
// Build with FMA contraction off (--fmad=false / -ffp-contract=off): the numpy
// reference and OpenCV round every product separately.
#ifndef LGNM_PRELUDE_CU
#define LGNM_PRELUDE_CU

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define FB_KERNEL extern "C" __global__
#define FB_FN __device__ __forceinline__
#define FB_FOR_PIXELS(W, H, NZ)                          \
    {                                                    \
        const int x = blockIdx.x * blockDim.x + threadIdx.x; \
        const int y = blockIdx.y * blockDim.y + threadIdx.y; \
        const int z = blockIdx.z;                        \
        if (x < (W) && y < (H) && z < (NZ)) {
#define FB_END_PIXELS \
        }             \
    }
#define FB_FLOORF(v) floorf(v)
#define FB_SQRTF(v) sqrtf(v)
#define FB_RINTF(v) rintf(v)
#define FB_FABSF(v) fabsf(v)
#else
#include <math.h>
#define FB_KERNEL extern "C"
#define FB_FN static inline
// Host emulation of a launch: the caller sets the grid (threads per axis, as the GPU
// launch would cover) with fb_set_grid, and every kernel keeps its own bounds check,
// so a launch that covers too little leaves output unwritten here as on the GPU.
static int fb_grid_w = 0, fb_grid_h = 0, fb_grid_z = 0;
extern "C" void fb_set_grid(int w, int h, int z) { fb_grid_w = w; fb_grid_h = h; fb_grid_z = z; }
#define FB_FOR_PIXELS(W, H, NZ)                               \
    for (int z = 0; z < fb_grid_z; ++z)                       \
        for (int y = 0; y < fb_grid_h; ++y)                   \
            for (int x = 0; x < fb_grid_w; ++x)               \
                if (x < (W) && y < (H) && z < (NZ)) {
#define FB_END_PIXELS }
#define FB_FLOORF(v) floorf(v)
#define FB_SQRTF(v) sqrtf(v)
#define FB_RINTF(v) rintf(v)
#define FB_FABSF(v) fabsf(v)
#endif

FB_FN int fb_min(int a, int b) { return a < b ? a : b; }
FB_FN int fb_max(int a, int b) { return a > b ? a : b; }
FB_FN int fb_clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }
#endif  // LGNM_PRELUDE_CU
