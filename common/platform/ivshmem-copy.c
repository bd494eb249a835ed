/* gst-ivshmem: copies at memory speed
 * SPDX-License-Identifier: MIT
 *
 * See ivshmem-copy.h. Non-temporal stores (MOVNTDQ, SSE2, which every
 * x86-64 CPU has) write whole lines to memory without reading them into
 * the cache first and without pushing out what the cache holds; they are
 * weakly ordered, so an sfence ends every copy that used them. Streaming
 * loads (MOVNTDQA, SSE4.1) only differ from plain loads on memory mapped
 * write-combining or uncached, where they read a line at a time.
 */
#include "ivshmem-copy.h"

#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <unistd.h>
#endif

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define IVSHM_COPY_X86 1
#include <emmintrin.h>
#include <smmintrin.h>
#else
#define IVSHM_COPY_X86 0
#endif

/* SIZE_MAX until read */
static size_t stream_min = SIZE_MAX;

/* The L2 cache of this core where the system says (glibc reads it from
 * CPUID), within reason; IVSHM_COPY_STREAM_MIN_DEFAULT otherwise. */
static size_t
default_stream_min (void)
{
#if defined(__linux__) && defined(_SC_LEVEL2_CACHE_SIZE)
  long l2 = sysconf (_SC_LEVEL2_CACHE_SIZE);

  if (l2 >= 256 * 1024 && l2 <= 8 * 1024 * 1024)
    return (size_t) l2;
#endif
  return IVSHM_COPY_STREAM_MIN_DEFAULT;
}

size_t
ivshm_copy_stream_min (void)
{
  size_t v = __atomic_load_n (&stream_min, __ATOMIC_RELAXED);

  if (v == SIZE_MAX) {
    const char *env = getenv ("IVSHMEM_COPY_STREAM_MIN");
    char *end = NULL;
    unsigned long long n;

    v = default_stream_min ();
    if (env && *env) {
      n = strtoull (env, &end, 0);
      if (end && *end == '\0' && n < SIZE_MAX)
        v = n == 0 ? SIZE_MAX - 1 : (size_t) n;
    }
    __atomic_store_n (&stream_min, v, __ATOMIC_RELAXED);
  }
  return v;
}

#if IVSHM_COPY_X86
static void
copy_nt (unsigned char *d, const unsigned char *s, size_t n)
{
  size_t head = (16 - ((uintptr_t) d & 15)) & 15;

  if (head > n)
    head = n;
  /* up to the destination's 16-byte alignment, which MOVNTDQ needs */
  memcpy (d, s, head);
  d += head;
  s += head;
  n -= head;
  while (n >= 64) {
    __m128i a = _mm_loadu_si128 ((const __m128i *) s);
    __m128i b = _mm_loadu_si128 ((const __m128i *) (s + 16));
    __m128i c = _mm_loadu_si128 ((const __m128i *) (s + 32));
    __m128i e = _mm_loadu_si128 ((const __m128i *) (s + 48));

    _mm_stream_si128 ((__m128i *) d, a);
    _mm_stream_si128 ((__m128i *) (d + 16), b);
    _mm_stream_si128 ((__m128i *) (d + 32), c);
    _mm_stream_si128 ((__m128i *) (d + 48), e);
    d += 64;
    s += 64;
    n -= 64;
  }
  memcpy (d, s, n);
  /* the non-temporal stores are not ordered with later stores: make them
   * visible before the caller publishes */
  _mm_sfence ();
}

/* built for SSE4.1 alone, called only where the CPU has it */
static void copy_stream_load (unsigned char *d, const unsigned char *s,
    size_t n) __attribute__((target ("sse4.1")));

static void
copy_stream_load (unsigned char *d, const unsigned char *s, size_t n)
{
  size_t head = (16 - ((uintptr_t) s & 15)) & 15;

  if (head > n)
    head = n;
  /* up to the source's 16-byte alignment, which MOVNTDQA needs */
  memcpy (d, s, head);
  d += head;
  s += head;
  n -= head;
  while (n >= 64) {
    /* (the intrinsic takes a non-const pointer; it only reads) */
    __m128i *p = (__m128i *) (uintptr_t) s;
    __m128i a = _mm_stream_load_si128 (p);
    __m128i b = _mm_stream_load_si128 (p + 1);
    __m128i c = _mm_stream_load_si128 (p + 2);
    __m128i e = _mm_stream_load_si128 (p + 3);

    _mm_storeu_si128 ((__m128i *) d, a);
    _mm_storeu_si128 ((__m128i *) (d + 16), b);
    _mm_storeu_si128 ((__m128i *) (d + 32), c);
    _mm_storeu_si128 ((__m128i *) (d + 48), e);
    d += 64;
    s += 64;
    n -= 64;
  }
  memcpy (d, s, n);
}
#endif

void
ivshm_copy (void *dst, const void *src, size_t len)
{
#if IVSHM_COPY_X86
  if (len >= ivshm_copy_stream_min ()) {
    copy_nt (dst, src, len);
    return;
  }
#endif
  memcpy (dst, src, len);
}

bool
ivshm_copy_has_stream_loads (void)
{
#if IVSHM_COPY_X86
  return __builtin_cpu_supports ("sse4.1");
#else
  return false;
#endif
}

void
ivshm_copy_from_uncached (void *dst, const void *src, size_t len)
{
#if IVSHM_COPY_X86
  if (ivshm_copy_has_stream_loads ()) {
    copy_stream_load (dst, src, len);
    return;
  }
#endif
  memcpy (dst, src, len);
}
