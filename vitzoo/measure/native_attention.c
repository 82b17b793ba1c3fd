/* vitzoo's native CPU attention: softmax(q k^T / sqrt(64)) v for every (image, head) of a ViT block.
 *
 * Built and loaded by native_attention.py (which checks every argument before calling in); used by the fused
 * inference kernels (fused.py) on AVX-512 CPUs. One call computes a whole block's attention, reading q, k and v
 * straight from the qkv projection's output, (B, N, 3, H, 64) row-major, and writing (B, N, H, 64) row-major, the
 * layout the output projection reads. Each (image, head) is one task of an OpenMP loop (the process's OpenMP
 * runtime, the one torch loaded); a task keeps k^T, the scores and a block of rows in L1/L2:
 *
 *   for each block of R query rows: S = q k^T (an R x 32 register tile at a time), P = exp(scale (S - rowmax)),
 *   O = P v (R x 32 at a time), O / rowsum.
 *
 * fp32 computes in fp32 throughout. bf16 (AVX512-BF16) multiplies bf16 pairs into fp32 accumulators (vdpbf16ps):
 * scores, softmax and sums stay fp32; the unnormalised probabilities are rounded to bf16 for P v (as a bf16 model
 * rounds its probabilities) and the output once, at the end. exp is a degree-7 polynomial after range reduction:
 * within 2 ulp of expf over the softmax's range [-87, 0] (tested against float64).
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define HD 64 /* head width: ViT-Ti/S/B/L */
#define R 8   /* query rows per block */

static inline __m512 exp_ps(__m512 x) {
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693359375f), ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, ln2_lo, _mm512_fnmadd_ps(n, ln2_hi, x));
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* Row r of the scores s (np columns, the last n..np-1 padding): overwritten with exp(scale (s - max)), padding
 * zeroed; returns 1 / the row's sum. */
static inline float softmax_numerators(float *s, int n, int np, float scale) {
    const __mmask16 tail = (__mmask16)((1u << (n - (np - 16))) - 1u);
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < np - 16; j += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(s + j));
    m = _mm512_mask_max_ps(m, tail, m, _mm512_loadu_ps(s + np - 16));
    const __m512 vscale = _mm512_set1_ps(scale), shift = _mm512_set1_ps(scale * _mm512_reduce_max_ps(m));
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < np; j += 16) {
        __m512 e = exp_ps(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), vscale, shift));
        if (j == np - 16) e = _mm512_maskz_mov_ps(tail, e);
        _mm512_storeu_ps(s + j, e);
        sum = _mm512_add_ps(sum, e);
    }
    return 1.0f / _mm512_reduce_add_ps(sum);
}

static inline void prefetch_row(const void *p) {
    _mm_prefetch((const char *)p, _MM_HINT_T0);
    _mm_prefetch((const char *)p + 64, _MM_HINT_T0);
}

/* ---- fp32 ---- */

/* One (image, head): q, k, v rows at a stride of ld floats, out rows at ldo; kt (64 x np) and s (R x np) scratch. */
static void head_f32(const float *q, const float *k, const float *v, float *out, int n, long ld, long ldo,
                     float scale, float *kt, float *s) {
    const int np = (n + 15) & ~15;
    for (int j = 0; j < np; j++) {
        if (j + 8 < n) prefetch_row(k + (j + 8) * ld), prefetch_row(k + (j + 8) * ld + 32);
        for (int d = 0; d < HD; d++) kt[d * np + j] = j < n ? k[j * ld + d] : 0.0f;
    }
    for (int i0 = 0; i0 < n; i0 += R) {
        const int rows = n - i0 < R ? n - i0 : R;
        float qb[R][HD], inv[R];
        for (int r = 0; r < R; r++)
            for (int d = 0; d < HD; d++) qb[r][d] = r < rows ? q[(i0 + r) * ld + d] : 0.0f;
        for (int j = 0; j < np; j += 32) {
            const int two = j + 16 < np;
            __m512 acc[R][2];
            for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
            for (int d = 0; d < HD; d++) {
                const __m512 b0 = _mm512_loadu_ps(kt + d * np + j);
                const __m512 b1 = two ? _mm512_loadu_ps(kt + d * np + j + 16) : _mm512_setzero_ps();
                for (int r = 0; r < R; r++) {
                    const __m512 a = _mm512_set1_ps(qb[r][d]);
                    acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
                }
            }
            for (int r = 0; r < R; r++) {
                _mm512_storeu_ps(s + r * np + j, acc[r][0]);
                if (two) _mm512_storeu_ps(s + r * np + j + 16, acc[r][1]);
            }
        }
        for (int r = 0; r < rows; r++) inv[r] = softmax_numerators(s + r * np, n, np, scale);
        for (int c = 0; c < HD; c += 32) {
            __m512 o[R][2];
            for (int r = 0; r < R; r++) o[r][0] = o[r][1] = _mm512_setzero_ps();
            for (int j = 0; j < n; j++) {
                const float *vj = v + j * ld + c;
                prefetch_row(vj + 8 * ld);
                const __m512 v0 = _mm512_loadu_ps(vj), v1 = _mm512_loadu_ps(vj + 16);
                for (int r = 0; r < R; r++) {
                    const __m512 p = _mm512_set1_ps(s[r * np + j]);
                    o[r][0] = _mm512_fmadd_ps(p, v0, o[r][0]);
                    o[r][1] = _mm512_fmadd_ps(p, v1, o[r][1]);
                }
            }
            for (int r = 0; r < rows; r++) {
                const __m512 iv = _mm512_set1_ps(inv[r]);
                float *o_row = out + (i0 + r) * ldo + c;
                _mm512_storeu_ps(o_row, _mm512_mul_ps(o[r][0], iv));
                _mm512_storeu_ps(o_row + 16, _mm512_mul_ps(o[r][1], iv));
            }
        }
    }
}

/* qkv (B, N, 3, H, 64) fp32 row-major -> out (B, N, H, 64); 0, or -1 when scratch memory ran out. */
int vitzoo_attention_f32(const float *qkv, float *out, long B, long N, long H, int threads) {
    const long D = H * HD, ld = 3 * D, np = (N + 15) & ~15L;
    const float scale = 1.0f / sqrtf((float)HD);
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        float *kt = aligned_alloc(64, sizeof(float) * HD * np), *s = aligned_alloc(64, sizeof(float) * R * np);
        failed = !kt || !s;
#pragma omp for schedule(static)
        for (long t = 0; t < B * H; t++) {
            const float *base = qkv + (t / H) * N * ld + (t % H) * HD;
            if (!failed) head_f32(base, base + D, base + 2 * D, out + (t / H) * N * D + (t % H) * HD, (int)N, ld, D,
                                  scale, kt, s);
        }
        free(kt), free(s);
    }
    return failed ? -1 : 0;
}

/* ---- bf16 (AVX512-BF16): pairs of bf16 as one 32-bit lane ---- */

#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma")))

/* One (image, head), bf16: rows as in head_f32 (strides in bf16 elements). kt: (32 pairs of d) x np lanes, each
 * lane k[j][2p], k[j][2p+1]; vp: (np/2 pairs of j) x 64 lanes, each lane v[2i][c], v[2i+1][c]; s: R x np fp32;
 * p: R x np bf16. */
BF16 static void head_bf16(const uint16_t *q, const uint16_t *k, const uint16_t *v, uint16_t *out, int n, long ld,
                           long ldo, float scale, uint32_t *kt, uint32_t *vp, float *s, uint16_t *p) {
    const int np = (n + 15) & ~15;
    for (int j = 0; j < np; j++) {
        if (j + 8 < n) prefetch_row(k + (j + 8) * ld);
        for (int d = 0; d < HD / 2; d++) kt[d * np + j] = j < n ? ((const uint32_t *)(k + j * ld))[d] : 0u;
    }
    /* lanes 0-15: (row0[c], row1[c]) for c = 0..15; lanes 16-31 of idx_hi: c = 16..31 */
    const __m512i idx_lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38,
                                            6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i idx_hi = _mm512_add_epi16(idx_lo, _mm512_set1_epi16(16));
    for (int j = 0; j < np; j += 2) {
        for (int c = 0; c < HD; c += 32) {
            const __m512i r0 = j < n ? _mm512_loadu_si512(v + j * ld + c) : _mm512_setzero_si512();
            const __m512i r1 = j + 1 < n ? _mm512_loadu_si512(v + (j + 1) * ld + c) : _mm512_setzero_si512();
            _mm512_storeu_si512(vp + (j / 2) * HD + c, _mm512_permutex2var_epi16(r0, idx_lo, r1));
            _mm512_storeu_si512(vp + (j / 2) * HD + c + 16, _mm512_permutex2var_epi16(r0, idx_hi, r1));
        }
    }
    for (int i0 = 0; i0 < n; i0 += R) {
        const int rows = n - i0 < R ? n - i0 : R;
        uint32_t qb[R][HD / 2];
        float inv[R];
        for (int r = 0; r < R; r++)
            for (int d = 0; d < HD / 2; d++) qb[r][d] = r < rows ? ((const uint32_t *)(q + (i0 + r) * ld))[d] : 0u;
        for (int j = 0; j < np; j += 32) {
            const int two = j + 16 < np;
            __m512 acc[R][2];
            for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
            for (int d = 0; d < HD / 2; d++) {
                const __m512bh b0 = (__m512bh)_mm512_loadu_si512(kt + d * np + j);
                const __m512bh b1 = (__m512bh)(two ? _mm512_loadu_si512(kt + d * np + j + 16) : _mm512_setzero_si512());
                for (int r = 0; r < R; r++) {
                    const __m512bh a = (__m512bh)_mm512_set1_epi32((int)qb[r][d]);
                    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
                    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
                }
            }
            for (int r = 0; r < R; r++) {
                _mm512_storeu_ps(s + r * np + j, acc[r][0]);
                if (two) _mm512_storeu_ps(s + r * np + j + 16, acc[r][1]);
            }
        }
        for (int r = 0; r < R; r++) {
            float *sr = s + r * np;
            if (r < rows) inv[r] = softmax_numerators(sr, n, np, scale);
            for (int j = 0; j < np; j += 16)  /* rows past the end: zeros, never read back */
                _mm256_storeu_si256((__m256i *)(p + r * np + j),
                                    r < rows ? (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(sr + j)) : _mm256_setzero_si256());
        }
        for (int c = 0; c < HD; c += 32) {
            __m512 o[R][2];
            for (int r = 0; r < R; r++) o[r][0] = o[r][1] = _mm512_setzero_ps();
            for (int j = 0; j < np; j += 2) {
                const uint32_t *vj = vp + (j / 2) * HD + c;
                const __m512bh v0 = (__m512bh)_mm512_loadu_si512(vj), v1 = (__m512bh)_mm512_loadu_si512(vj + 16);
                for (int r = 0; r < R; r++) {
                    const __m512bh a = (__m512bh)_mm512_set1_epi32((int)*(const uint32_t *)(p + r * np + j));
                    o[r][0] = _mm512_dpbf16_ps(o[r][0], a, v0);
                    o[r][1] = _mm512_dpbf16_ps(o[r][1], a, v1);
                }
            }
            for (int r = 0; r < rows; r++) {
                const __m512 iv = _mm512_set1_ps(inv[r]);
                uint16_t *o_row = out + (i0 + r) * ldo + c;
                _mm256_storeu_si256((__m256i *)o_row, (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(o[r][0], iv)));
                _mm256_storeu_si256((__m256i *)(o_row + 16), (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(o[r][1], iv)));
            }
        }
    }
}

/* qkv (B, N, 3, H, 64) bf16 row-major -> out (B, N, H, 64); 0, or -1 when scratch memory ran out. */
BF16 int vitzoo_attention_bf16(const uint16_t *qkv, uint16_t *out, long B, long N, long H, int threads) {
    const long D = H * HD, ld = 3 * D, np = (N + 15) & ~15L;
    const float scale = 1.0f / sqrtf((float)HD);
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        uint32_t *kt = aligned_alloc(64, 4 * (HD / 2) * np), *vp = aligned_alloc(64, 4 * (np / 2) * HD);
        float *s = aligned_alloc(64, sizeof(float) * R * np);
        uint16_t *p = aligned_alloc(64, 2 * R * np);
        failed = !kt || !vp || !s || !p;
#pragma omp for schedule(static)
        for (long t = 0; t < B * H; t++) {
            const uint16_t *base = qkv + (t / H) * N * ld + (t % H) * HD;
            if (!failed) head_bf16(base, base + D, base + 2 * D, out + (t / H) * N * D + (t % H) * HD, (int)N, ld,
                                   D, scale, kt, vp, s, p);
        }
        free(kt), free(vp), free(s), free(p);
    }
    return failed ? -1 : 0;
}
