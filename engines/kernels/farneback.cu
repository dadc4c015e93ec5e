// Farneback dense flow, one kernel per step of engines/farneback_ref.py (which ports
// OpenCV's optflowgf.cpp). Every kernel processes a batch: blockIdx.z (or the outer host
// loop) is the frame index for per-frame kernels and the pair index for per-pair ones.
//
// Layouts (all float32, C-contiguous):
//   image batch     (NZ, H, W)
//   poly ring       slot s, level l at ring + s*slot_stride + level_off: (h, w, 5)
//   flow            (NZ, h, w, 2);  matrices M, V  (NZ, h, w, 5)
#include "prelude.cu"

// ---------------------------------------------------------------- per frame

FB_KERNEL void fb_u8_to_f32(const unsigned char* src, float* dst, int w, int h, int nz)
{
    FB_FOR_PIXELS(w, h, nz)
    const long long i = ((long long)z * h + y) * w + x;
    dst[i] = (float)src[i];
    FB_END_PIXELS
}

// BORDER_REFLECT_101 index (cv::GaussianBlur default border).
FB_FN int fb_reflect101(int i, int n)
{
    if (n == 1) return 0;
    const int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i >= n ? period - i : i;
}

// Horizontal pass of the separable Gaussian (farneback_ref.gaussian_blur, rows first).
FB_KERNEL void fb_blur_rows(const float* src, float* dst, int w, int h, int nz,
                            const float* k, int ksize)
{
    FB_FOR_PIXELS(w, h, nz)
    const float* row = src + ((long long)z * h + y) * w;
    const int r = ksize / 2;
    float acc = 0.f;
    for (int i = 0; i < ksize; ++i) acc = acc + row[fb_reflect101(x - r + i, w)] * k[i];
    dst[((long long)z * h + y) * w + x] = acc;
    FB_END_PIXELS
}

// Vertical pass of the separable Gaussian.
FB_KERNEL void fb_blur_cols(const float* src, float* dst, int w, int h, int nz,
                            const float* k, int ksize)
{
    FB_FOR_PIXELS(w, h, nz)
    const float* img = src + (long long)z * h * w;
    const int r = ksize / 2;
    float acc = 0.f;
    for (int i = 0; i < ksize; ++i) acc = acc + img[(long long)fb_reflect101(y - r + i, h) * w + x] * k[i];
    dst[((long long)z * h + y) * w + x] = acc;
    FB_END_PIXELS
}

// cv::resize INTER_LINEAR (float) with host-computed taps (farneback_ref.linear_taps):
// horizontal interpolation of the two source rows, then vertical, then `* mul`
// (mul = 1 for the pyramid, 1/pyr_scale for flow upsampling; *1 is exact).
FB_KERNEL void fb_resize_linear(const float* src, float* dst, int sw, int sh, int dw, int dh,
                                int c, int nz, const int* x0, const int* x1, const float* ax,
                                const int* y0, const int* y1, const float* ay, float mul)
{
    FB_FOR_PIXELS(dw, dh, nz)
    const float* s = src + (long long)z * sh * sw * c;
    const float a = ax[x], b = ay[y];
    const float* ra = s + (long long)y0[y] * sw * c;
    const float* rb = s + (long long)y1[y] * sw * c;
    float* d = dst + (((long long)z * dh + y) * dw + x) * c;
    for (int ch = 0; ch < c; ++ch) {
        const float r0 = ra[x0[x] * c + ch] * (1.f - a) + ra[x1[x] * c + ch] * a;
        const float r1 = rb[x0[x] * c + ch] * (1.f - a) + rb[x1[x] * c + ch] * a;
        d[ch] = (r0 * (1.f - b) + r1 * b) * mul;
    }
    FB_END_PIXELS
}

// FarnebackPolyExp, vertical part: (NZ,h,w) -> (NZ,h,w,3) rows (replicate border).
FB_KERNEL void fb_poly_vert(const float* src, float* rows3, int w, int h, int nz,
                            const float* g, const float* xg, const float* xxg, int n)
{
    FB_FOR_PIXELS(w, h, nz)
    const float* img = src + (long long)z * h * w;
    float r0 = img[(long long)y * w + x] * g[0], r1 = 0.f, r2 = 0.f;
    for (int k = 1; k <= n; ++k) {
        const float up = img[(long long)fb_max(y - k, 0) * w + x];
        const float dn = img[(long long)fb_min(y + k, h - 1) * w + x];
        const float p = up + dn;
        r0 = r0 + g[k] * p;
        r1 = r1 + xg[k] * (dn - up);
        r2 = r2 + xxg[k] * p;
    }
    float* o = rows3 + (((long long)z * h + y) * w + x) * 3;
    o[0] = r0; o[1] = r1; o[2] = r2;
    FB_END_PIXELS
}

// FarnebackPolyExp, horizontal part in double, writes the 5 coefficients of frame z's
// level into its ring slot (slots[z]).
FB_KERNEL void fb_poly_horz(const float* rows3, float* ring, long long slot_stride,
                            long long level_off, const int* slots, int w, int h, int nz,
                            const float* g, const float* xg, const float* xxg, int n,
                            double ig11, double ig03, double ig33, double ig55)
{
    FB_FOR_PIXELS(w, h, nz)
    const float* row = rows3 + ((long long)z * h + y) * w * 3;
    double b1 = (double)(row[x * 3] * g[0]);
    double b3 = (double)(row[x * 3 + 1] * g[0]);
    double b5 = (double)(row[x * 3 + 2] * g[0]);
    double b2 = 0.0, b4 = 0.0, b6 = 0.0;
    for (int k = 1; k <= n; ++k) {
        const float* lo = row + fb_max(x - k, 0) * 3;
        const float* hi = row + fb_min(x + k, w - 1) * 3;
        const double tg = (double)(hi[0] + lo[0]);
        b1 += tg * (double)g[k];
        b4 += tg * (double)xxg[k];
        b2 += (double)((hi[0] - lo[0]) * xg[k]);
        b3 += (double)((hi[1] + lo[1]) * g[k]);
        b6 += (double)((hi[1] - lo[1]) * xg[k]);
        b5 += (double)((hi[2] + lo[2]) * g[k]);
    }
    float* o = ring + (long long)slots[z] * slot_stride + level_off + ((long long)y * w + x) * 5;
    o[0] = (float)(b3 * ig11);
    o[1] = (float)(b2 * ig11);
    o[2] = (float)(b1 * ig03 + b5 * ig33);
    o[3] = (float)(b1 * ig03 + b4 * ig33);
    o[4] = (float)(b6 * ig55);
    FB_END_PIXELS
}

// ---------------------------------------------------------------- per pair

// FarnebackUpdateMatrices for pair z = (slot_a[z] -> slot_b[z]) at one level.
// bx (w) and by (h) are the border damping factors; their product is 1 inside.
FB_KERNEL void fb_update_matrices(const float* ring, long long slot_stride, long long level_off,
                                  const int* slot_a, const int* slot_b, const float* flow,
                                  float* M, int w, int h, int nz, const float* bx, const float* by)
{
    FB_FOR_PIXELS(w, h, nz)
    const float* R0 = ring + (long long)slot_a[z] * slot_stride + level_off + ((long long)y * w + x) * 5;
    const float* R1 = ring + (long long)slot_b[z] * slot_stride + level_off;
    const long long p = (long long)z * h * w + (long long)y * w + x;
    const float dx = flow[p * 2], dy = flow[p * 2 + 1];
    float fx = (float)x + dx, fy = (float)y + dy;
    const int x1 = (int)FB_FLOORF(fx), y1 = (int)FB_FLOORF(fy);
    fx -= (float)x1;
    fy -= (float)y1;
    float r2, r3, r4, r5, r6;
    if (x1 >= 0 && x1 < w - 1 && y1 >= 0 && y1 < h - 1) {
        const float a00 = (1.f - fx) * (1.f - fy), a01 = fx * (1.f - fy);
        const float a10 = (1.f - fx) * fy, a11 = fx * fy;
        const float* q = R1 + ((long long)y1 * w + x1) * 5;
        const long long st = (long long)w * 5;
        float r[5];
        for (int c = 0; c < 5; ++c)
            r[c] = a00 * q[c] + a01 * q[5 + c] + a10 * q[st + c] + a11 * q[st + 5 + c];
        r2 = r[0];
        r3 = r[1];
        r4 = (R0[2] + r[2]) * 0.5f;
        r5 = (R0[3] + r[3]) * 0.5f;
        r6 = (R0[4] + r[4]) * 0.25f;
    } else {
        r2 = r3 = 0.f;
        r4 = R0[2];
        r5 = R0[3];
        r6 = R0[4] * 0.5f;
    }
    r2 = (R0[0] - r2) * 0.5f;
    r3 = (R0[1] - r3) * 0.5f;
    r2 = r2 + (r4 * dy + r6 * dx);
    r3 = r3 + (r6 * dy + r5 * dx);
    const float s = bx[x] * by[y];
    r2 *= s; r3 *= s; r4 *= s; r5 *= s; r6 *= s;
    float* m = M + p * 5;
    m[0] = r4 * r4 + r6 * r6;
    m[1] = (r4 + r5) * r6;
    m[2] = r5 * r5 + r6 * r6;
    m[3] = r4 * r2 + r6 * r3;
    m[4] = r6 * r2 + r5 * r3;
    FB_END_PIXELS
}

// Gaussian window over M, vertical pass (replicate border); k = half kernel 0..m.
FB_KERNEL void fb_blur_m_vert(const float* M, float* V, int w, int h, int nz, const float* k, int m)
{
    FB_FOR_PIXELS(w, h, nz)
    const float* img = M + (long long)z * h * w * 5;
    const float* c0 = img + ((long long)y * w + x) * 5;
    float v[5];
    for (int c = 0; c < 5; ++c) v[c] = c0[c] * k[0];
    for (int i = 1; i <= m; ++i) {
        const float* dn = img + ((long long)fb_min(y + i, h - 1) * w + x) * 5;
        const float* up = img + ((long long)fb_max(y - i, 0) * w + x) * 5;
        for (int c = 0; c < 5; ++c) v[c] = v[c] + (dn[c] + up[c]) * k[i];
    }
    float* o = V + (((long long)z * h + y) * w + x) * 5;
    for (int c = 0; c < 5; ++c) o[c] = v[c];
    FB_END_PIXELS
}

// Horizontal pass of the window, then solve blur(G) * flow = blur(h) in double.
FB_KERNEL void fb_blur_m_horz_solve(const float* V, float* flow, int w, int h, int nz,
                                    const float* k, int m)
{
    FB_FOR_PIXELS(w, h, nz)
    const float* row = V + ((long long)z * h + y) * w * 5;
    float s[5];
    for (int c = 0; c < 5; ++c) s[c] = row[x * 5 + c] * k[0];
    for (int i = 1; i <= m; ++i) {
        const float* lo = row + fb_max(x - i, 0) * 5;
        const float* hi = row + fb_min(x + i, w - 1) * 5;
        for (int c = 0; c < 5; ++c) s[c] = s[c] + k[i] * (lo[c] + hi[c]);
    }
    const double g11 = s[0], g12 = s[1], g22 = s[2], h1 = s[3], h2 = s[4];
    const double idet = 1.0 / (g11 * g22 - g12 * g12 + 1e-3);
    float* f = flow + (((long long)z * h + y) * w + x) * 2;
    f[0] = (float)((g11 * h2 - g12 * h1) * idet);
    f[1] = (float)((g22 * h1 - g12 * h2) * idet);
    FB_END_PIXELS
}
