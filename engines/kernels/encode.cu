// Flow -> network input, mirroring realtime/features.py (encode_hs, remove_head_motion,
// mask_eyes, select_roi, normalise) for a batch of pairs (blockIdx.z / outer loop = pair).
//
// Per-pair inputs: flow (NZ,S,S,2) float32; per-frame products of each pair's first
// frame, looked up through slot_a[z]: nose box (4 ints), eye mask (S,S) uint8 (nonzero =
// inside a grown eye polygon, filled on the host), ROI taps (see enc_roi).
#include "prelude.cu"

// cv::fastAtan32f in degrees (the SIMD path OpenCV runs: fused multiply-adds).
FB_FN float enc_atan_deg(float y, float x)
{
    const float p1 = 0.9997878412794807f * (float)(180 / 3.14159265358979323846);
    const float p3 = -0.3258083974640975f * (float)(180 / 3.14159265358979323846);
    const float p5 = 0.1555786518463281f * (float)(180 / 3.14159265358979323846);
    const float p7 = -0.04432655554792128f * (float)(180 / 3.14159265358979323846);
    const float eps = (float)2.220446049250313080847e-16;
    const float ax = FB_FABSF(x), ay = FB_FABSF(y);
    const float c = (ax < ay ? ax : ay) / ((ax > ay ? ax : ay) + eps);
    const float cc = c * c;
    float a = fmaf(fmaf(fmaf(cc, p7, p5), cc, p3), cc, p1) * c;
    if (!(ax >= ay)) a = 90.f - a;
    if (x < 0.f) a = 180.f - a;
    if (y < 0.f) a = 360.f - a;
    return a;
}

FB_FN float enc_clip(float v, float c) { return v < -c ? -c : (v > c ? c : v); }

// cv::magnitude (SIMD: sqrt(fma(x, x, y*y))) of the clipped flow.
FB_FN float enc_magnitude(const float* f, float clip)
{
    const float x = enc_clip(f[0], clip), y = enc_clip(f[1], clip);
    return FB_SQRTF(fmaf(x, x, y * y));
}

FB_FN unsigned char enc_sat_u8(float v)
{
    const float r = FB_RINTF(v);  // cvRound: half to even
    return (unsigned char)(r < 0.f ? 0.f : (r > 255.f ? 255.f : r));
}

// Per-pair min and max magnitude over the value region of the pair's first frame
// (regions: (slot, S, S) uint8, nonzero = inside; all ones for the authors' whole-pair
// rule) -> mm[2z], mm[2z+1] (value normalisation of encode_hs).
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
FB_KERNEL void enc_minmax(const float* flow, const unsigned char* regions, const int* slot_a,
                          float* mm, int S, int nz, float clip)
{
    // one block of 256 threads per pair (blockIdx.z), shared-memory reduction
    __shared__ float lo[256];
    __shared__ float hi[256];
    const int z = blockIdx.z, t = threadIdx.x, n = S * S;
    if (z >= nz) return;
    const float* f = flow + (long long)z * n * 2;
    const unsigned char* region = regions + (long long)slot_a[z] * n;
    float a = 3.4e38f, b = -3.4e38f;
    for (int i = t; i < n; i += blockDim.x) {
        if (!region[i]) continue;
        const float m = enc_magnitude(f + 2 * i, clip);
        a = m < a ? m : a;
        b = m > b ? m : b;
    }
    lo[t] = a;
    hi[t] = b;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) {
            lo[t] = lo[t + s] < lo[t] ? lo[t + s] : lo[t];
            hi[t] = hi[t + s] > hi[t] ? hi[t + s] : hi[t];
        }
        __syncthreads();
    }
    if (t == 0) {
        mm[2 * z] = lo[0];
        mm[2 * z + 1] = hi[0];
    }
}
#else
FB_KERNEL void enc_minmax(const float* flow, const unsigned char* regions, const int* slot_a,
                          float* mm, int S, int nz, float clip)
{
    for (int z = 0; z < nz; ++z) {
        const float* f = flow + (long long)z * S * S * 2;
        const unsigned char* region = regions + (long long)slot_a[z] * S * S;
        float a = 3.4e38f, b = -3.4e38f;
        for (int i = 0; i < S * S; ++i) {
            if (!region[i]) continue;
            const float m = enc_magnitude(f + 2 * i, clip);
            a = m < a ? m : a;
            b = m > b ? m : b;
        }
        mm[2 * z] = a;
        mm[2 * z + 1] = b;
    }
}
#endif

// HS image (encode_hs): hue = direction/2 (0..179), sat 255, value = min-max
// normalised magnitude (span at least `span_floor` px), then HSV -> BGR through
// `lut` (180*256*3 uint8, hue-major, read off cv::cvtColor(COLOR_HSV2BGR) on the host
// for saturation 255, so the conversion is OpenCV's bit for bit).
FB_KERNEL void enc_hs(const float* flow, const float* mm, const unsigned char* lut, unsigned char* bgr,
                      int S, int nz, float clip, double span_floor)
{
    FB_FOR_PIXELS(S, S, nz)
    const long long p = ((long long)z * S + y) * S + x;
    const float fx = enc_clip(flow[p * 2], clip), fy = enc_clip(flow[p * 2 + 1], clip);
    const float mag = FB_SQRTF(fmaf(fx, fx, fy * fy));
    const float ang = enc_atan_deg(fy, fx);
    const int hue = ((int)(ang * 0.5f)) % 180;
    const double lo = mm[2 * z];
    double hi = mm[2 * z + 1];
    if (hi < lo + span_floor) hi = lo + span_floor;
    int val = 0;
    if (hi - lo > 1e-6) {
        const float alpha = (float)(255.0 / (hi - lo));
        const float beta = (float)(-lo * 255.0 / (hi - lo));
        val = enc_sat_u8(FB_FABSF(fmaf(mag, alpha, beta)));
    }
    const unsigned char* c = lut + (hue * 256 + val) * 3;
    unsigned char* o = bgr + p * 3;
    o[0] = c[0];
    o[1] = c[1];
    o[2] = c[2];
    FB_END_PIXELS
}

// Per-pair per-channel mean over the nose box of the pair's first frame (x = channel).
// Sums of uint8 are exact in float32 for any box of a face crop (< 2^24 / 255 pixels).
FB_KERNEL void enc_nose_mean(const unsigned char* bgr, const int* boxes, const int* slot_a,
                             float* means, int S, int nz)
{
    FB_FOR_PIXELS(3, 1, nz)
    const int* b = boxes + slot_a[z] * 4;  // x0, y0, x1, y1 (end-exclusive)
    float sum = 0.f;
    for (int yy = b[1]; yy < b[3]; ++yy)
        for (int xx = b[0]; xx < b[2]; ++xx)
            sum += (float)bgr[(((long long)z * S + yy) * S + xx) * 3 + x];
    means[z * 3 + x] = sum / (float)((b[3] - b[1]) * (b[2] - b[0]));
    (void)y;
    FB_END_PIXELS
}

// One source pixel after head-motion removal and eye masking (uint8 semantics).
FB_FN float enc_source(const unsigned char* bgr, const unsigned char* mask, const float* mean,
                       int S, int z, int yy, int xx, int ch)
{
    if (mask[(long long)yy * S + xx]) return 0.f;
    float v = (float)bgr[(((long long)z * S + yy) * S + xx) * 3 + ch] - mean[ch];
    if (ch < 2) v = FB_FABSF(v);
    v = FB_RINTF(v);
    return v < 0.f ? 0.f : (v > 255.f ? 255.f : v);
}

// ROI + normalisation: output (NZ, 3, 2*half, outw) float32 = (p - 127.5) / 128.
// Per frame slot and part (0 = brow box -> top half, 1 = mouth box -> bottom half):
//   boxes_roi (slot, 2, 4), modes (slot, 2), taps xi/xw (slot, 2, outw, T) and
//   yi/yw (slot, 2, half, T), indices relative to the box origin, weight 0 = unused.
// Modes reproduce cv::resize for uint8 exactly:
//   0 INTER_LINEAR (and INTER_AREA when enlarging one axis): 2 taps, integer weights
//     summing to 2048; rows then columns in fixed point as OpenCV's SIMD path:
//     ((((r0 >> 4) * b0) >> 16) + (((r1 >> 4) * b1) >> 16) + 2) >> 2
//   1 INTER_AREA, both axes shrinking: float weights, rows then columns, cvRound
//   2 INTER_AREA with integer scales (OpenCV's fast path): as 1, rounding half up
FB_KERNEL void enc_roi(const unsigned char* bgr, const unsigned char* masks, const int* slot_a,
                       const float* means, const int* boxes_roi, const int* modes, const int* xi,
                       const float* xw, const int* yi, const float* yw, float* out, int S, int nz,
                       int outw, int half, int T)
{
    FB_FOR_PIXELS(outw, 2 * half, nz)
    const int slot = slot_a[z];
    const int part = y >= half ? 1 : 0;
    const int oy = y - part * half;
    const int* box = boxes_roi + (slot * 2 + part) * 4;
    const int mode = modes[slot * 2 + part];
    const unsigned char* mask = masks + (long long)slot * S * S;
    const float* mean = means + z * 3;
    const long long xt = ((long long)(slot * 2 + part) * outw + x) * T;
    const long long yt = ((long long)(slot * 2 + part) * half + oy) * T;
    for (int ch = 0; ch < 3; ++ch) {
        float q;
        if (mode == 0) {
            int r[2];
            for (int ty = 0; ty < 2; ++ty) {
                const int sy = box[1] + yi[yt + ty];
                r[ty] = 0;
                for (int tx = 0; tx < 2; ++tx)
                    r[ty] += (int)xw[xt + tx] * (int)enc_source(bgr, mask, mean, S, z, sy, box[0] + xi[xt + tx], ch);
            }
            const int b0 = (int)yw[yt], b1 = (int)yw[yt + 1];
            int v = ((((r[0] >> 4) * b0) >> 16) + (((r[1] >> 4) * b1) >> 16) + 2) >> 2;
            q = (float)(v < 0 ? 0 : (v > 255 ? 255 : v));
        } else {
            float acc = 0.f;
            for (int ty = 0; ty < T; ++ty) {
                const float wy = yw[yt + ty];
                if (wy == 0.f) continue;
                float row = 0.f;
                for (int tx = 0; tx < T; ++tx) {
                    const float wx = xw[xt + tx];
                    if (wx == 0.f) continue;
                    row = row + wx * enc_source(bgr, mask, mean, S, z, box[1] + yi[yt + ty], box[0] + xi[xt + tx], ch);
                }
                acc = acc + wy * row;
            }
            q = mode == 2 ? FB_FLOORF(acc + 0.5f) : FB_RINTF(acc);
            q = q < 0.f ? 0.f : (q > 255.f ? 255.f : q);
        }
        out[(((long long)z * 3 + ch) * 2 * half + y) * outw + x] = (q - 127.5f) / 128.f;
    }
    FB_END_PIXELS
}
