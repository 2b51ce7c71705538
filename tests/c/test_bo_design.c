/* The initial design fills the strata: the scrambled Sobol sequence keeps its first point, so its
 * first 2^k points put one point in each of 2^k equal intervals of every coordinate, and in 2-D one
 * in each cell of every 2^a x 2^(k-a) grid (a (0, k, 2)-net); it is seeded, deterministic and
 * uniform, with independent positions inside the intervals (Owen's scramble); the BO loop's first 4
 * points on [0, 1] hit each quarter (the shifted design before left one empty for every seed). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bo/bo_loop.h"
#include "bo/bo_qmc.h"
#include "core/err.h"
#include "tap.h"

enum { MAXK = 10, N = 1 << MAXK };

static double pts[N * 40];

static void draw(int d, uint64_t seed, bo_qmc_kind kind, int n)
{
    bo_qmc *q = bo_qmc_new_kind(d, seed, kind);
    for (int i = 0; i < n; i++)
        bo_qmc_next(q, pts + (size_t)i * d);
    bo_qmc_free(q);
}

/* Each of the 2^k intervals of coordinate j holds exactly one of the first 2^k points. */
static int strata_1d(int d, int j, int k)
{
    int n = 1 << k, seen[N] = {0};
    for (int i = 0; i < n; i++) {
        double x = pts[(size_t)i * d + j];
        if (!(x >= 0 && x < 1) || seen[(int)(x * n)]++)
            return 0;
    }
    return 1;
}

/* Every cell of every 2^a x 2^(k-a) grid of coordinates (0, 1) holds exactly one of the first 2^k. */
static int net_2d(int d, int k)
{
    int n = 1 << k;
    for (int a = 0; a <= k; a++) {
        int *seen = calloc((size_t)n, sizeof *seen), ok = 1;
        for (int i = 0; i < n && ok; i++) {
            int cx = (int)(pts[(size_t)i * d] * (1 << a)), cy = (int)(pts[(size_t)i * d + 1] * (1 << (k - a)));
            ok = !seen[cx * (1 << (k - a)) + cy]++;
        }
        free(seen);
        if (!ok)
            return 0;
    }
    return 1;
}

static void check_strata(void)
{
    int ok1 = 1, ok40 = 1, ok2 = 1, shifted_gap = 1;
    for (uint64_t seed = 1; seed <= 50; seed++) {
        draw(1, seed, BO_QMC_SCRAMBLED, N);
        for (int k = 0; k <= MAXK; k++)
            ok1 = ok1 && strata_1d(1, 0, k);
        draw(2, seed, BO_QMC_SCRAMBLED, 256);
        for (int k = 0; k <= 8; k++)
            ok2 = ok2 && net_2d(2, k);
        draw(40, seed, BO_QMC_SCRAMBLED, 256);
        for (int j = 0; j < 40; j++)
            for (int k = 0; k <= 8; k++)
                ok40 = ok40 && strata_1d(40, j, k);
        draw(1, seed, BO_QMC_SHIFTED, 4);
        shifted_gap = shifted_gap && !strata_1d(1, 0, 2);
    }
    tap_ok(ok1, "1-D: the first 2^k points (k <= %d) hold one point per interval of 2^-k, 50 seeds", MAXK);
    tap_ok(ok2, "2-D: the first 2^k points (k <= 8) are a (0, k, 2)-net: one per cell of every 2^a x 2^(k-a) grid");
    tap_ok(ok40, "40-D: every coordinate of the first 2^k points (k <= 8) holds one point per interval of 2^-k");
    tap_ok(shifted_gap, "the shifted design (GSL's from its second point) leaves a quarter empty at 4 points, "
                        "every seed");
}

static void check_seeded(void)
{
    double a[6 * 8], b[6 * 8];
    draw(6, 7, BO_QMC_SCRAMBLED, 8);
    memcpy(a, pts, sizeof a);
    draw(6, 7, BO_QMC_SCRAMBLED, 8);
    memcpy(b, pts, sizeof b);
    tap_ok(memcmp(a, b, sizeof a) == 0, "the same seed gives the same points");
    draw(6, 8, BO_QMC_SCRAMBLED, 8);
    tap_ok(memcmp(a, pts, sizeof a) != 0, "another seed gives other points");
    /* a digital shift alone moves every point by the same XOR: the first two points' XOR would be the
     * same for every seed; the linear scramble makes it depend on the seed */
    int varies = 0, halves = 1;
    uint32_t first = 0;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        draw(1, seed, BO_QMC_SCRAMBLED, 2);
        uint32_t x = (uint32_t)(pts[0] * 4294967296.0) ^ (uint32_t)(pts[1] * 4294967296.0);
        halves = halves && x >> 31 == 1;
        varies += seed > 1 && x != first;
        first = seed == 1 ? x : first;
    }
    tap_ok(halves, "the first two points lie in different halves of [0, 1), 20 seeds");
    tap_ok(varies >= 18, "the scramble is more than a shift: the pattern of the points depends on the seed (%d of 19)",
           varies);
    /* every point is uniform on [0, 1): point 3 (index 2) over 4000 seeds, chi-square over 16 bins */
    int bins[16] = {0}, seeds = 4000;
    for (uint64_t seed = 1; seed <= (uint64_t)seeds; seed++) {
        draw(1, seed, BO_QMC_SCRAMBLED, 3);
        bins[(int)(pts[2] * 16)]++;
    }
    double chi2 = 0, e = seeds / 16.0;
    for (int k = 0; k < 16; k++)
        chi2 += (bins[k] - e) * (bins[k] - e) / e;
    tap_ok(chi2 < 37.7, "the third point is uniform over seeds: chi-square %.1f on 15 degrees of freedom (p > 0.001)",
           chi2);
    /* Owen's scramble: the positions inside the quarters are independent, so all four points lie in
     * the same half of their quarter in 1/8 of the seeds (a random linear scramble links them: 1/4) */
    int same_half = 0;
    for (uint64_t seed = 1; seed <= (uint64_t)seeds; seed++) {
        draw(1, seed, BO_QMC_SCRAMBLED, 4);
        int upper = 0;
        for (int i = 0; i < 4; i++)
            upper += fmod(pts[i] * 4, 1.0) >= 0.5;
        same_half += upper == 0 || upper == 4;
    }
    tap_ok(fabs(same_half - seeds / 8.0) < 4 * sqrt(seeds / 8.0 * 7 / 8),
           "positions inside the quarters are independent: all 4 points in the same half of their quarter for %d of %d "
           "seeds (1/8: %d)", same_half, seeds, seeds / 8);
}

/* The BO loop asks its design through bo_qmc: 4 points on [0, 1] hit each quarter. */
static void check_loop(void)
{
    static const double lo = 0, hi = 1;
    int hits[2] = {0, 0};
    for (int kind = 0; kind < 2; kind++)
        for (uint64_t seed = 1; seed <= 20; seed++) {
            bo_options o;
            bo_defaults(&o, 1, &lo, &hi);
            o.seed = seed;
            o.init = 4;
            o.design = kind == 0 ? BO_QMC_SCRAMBLED : BO_QMC_SHIFTED;
            bo *b = bo_new(&o);
            int quarters[4] = {0};
            for (int i = 0; i < 4; i++) {
                double x;
                if (bo_ask(b, &x) != 0 || bo_tell(b, &x, x * x, 0.01) != 0)
                    break;
                quarters[(int)(x * 4)]++;
            }
            hits[kind] += quarters[0] == 1 && quarters[1] == 1 && quarters[2] == 1 && quarters[3] == 1;
            bo_free(b);
        }
    tap_ok(hits[0] == 20, "bo_loop's default design: 4 points on [0, 1], one in each quarter, %d of 20 seeds", hits[0]);
    tap_ok(hits[1] == 0, "design = shifted (the design before): a quarter left empty for %d of 20 seeds", 20 - hits[1]);
    bo_options o;
    static const double lo2[2] = {0, 0}, hi2[2] = {1, 1};
    bo_defaults(&o, 2, lo2, hi2);
    o.design = (bo_qmc_kind)7;
    tap_error(bo_new(&o) == NULL, "'design' must be scrambled or shifted, got 7", NULL, "an unknown design is refused");
    bo_qmc_kind k;
    tap_error(bo_qmc_kind_parse("lhs", &k) != 0, "unknown design 'lhs' (known: scrambled, shifted)", NULL,
              "an unknown design name is refused, listing the known ones");
}

int main(void)
{
    check_strata();
    check_seeded();
    check_loop();
    return tap_done();
}
