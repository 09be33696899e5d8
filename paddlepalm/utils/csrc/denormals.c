/* Flush-to-zero (FTZ) and denormals-are-zero (DAZ) in this thread's SSE control register (MXCSR);
 * threads created afterwards inherit it. See paddlepalm/utils/denormals.py. */
#include <xmmintrin.h>

#define PALM_FTZ_DAZ 0x8040u /* bit 15: flush results to zero; bit 6: read denormal inputs as zero */

void palm_set_flush_denormals(int on) {
    unsigned int csr = _mm_getcsr();
    _mm_setcsr(on ? (csr | PALM_FTZ_DAZ) : (csr & ~PALM_FTZ_DAZ));
}

int palm_flushing_denormals(void) { return (_mm_getcsr() & PALM_FTZ_DAZ) == PALM_FTZ_DAZ; }
