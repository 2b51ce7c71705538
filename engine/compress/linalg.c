/* The two dense kernels the families need: a thin SVD (LAPACK) and a float GEMM (oneDNN). */
#include <lapacke.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compress.h"
#include "core/blas_serial.h"
#include "core/err.h"

int cp_svd(int m, int n, float *a, float *u, float *s, float *vt)
{
    int r = m < n ? m : n;
    float *copy = malloc((size_t)m * n * sizeof *copy);
    if (!copy)
        return err_set("out of memory");
    memcpy(copy, a, (size_t)m * n * sizeof *copy);
    /* the row-major m×n matrix is the column-major n×m one, whose SVD is V S U^T: asking LAPACK
     * for that one gives U and V^T in row-major order without any transposition */
    int threads = blas_serial_begin();
    lapack_int info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'S', n, m, a, n, s, vt, n, u, r);
    if (info > 0) { /* the divide-and-conquer iteration did not converge: the QR one may */
        float *superb = malloc((size_t)r * sizeof *superb);
        info = superb ? LAPACKE_sgesvd(LAPACK_COL_MAJOR, 'S', 'S', n, m, copy, n, s, vt, n, u, r, superb) : -1;
        free(superb);
    }
    blas_serial_end(threads);
    free(copy);
    if (info != 0)
        return err_set("SVD of a %dx%d matrix failed (LAPACK info %d)", m, n, (int)info);
    return 0;
}

int cp_gemm(char ta, char tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c,
            int ldc)
{
    if (m == 0 || n == 0)
        return 0;
    if (k == 0) {
        for (int i = 0; i < m; i++)
            memset(c + (size_t)i * ldc, 0, (size_t)n * sizeof *c);
        return 0;
    }
    if (dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc) != dnnl_success)
        return err_set("oneDNN sgemm %dx%dx%d failed", m, n, k);
    return 0;
}
