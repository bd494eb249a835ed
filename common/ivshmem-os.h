/* gst-ivshmem: what the core needs from the operating system
 * SPDX-License-Identifier: MIT
 *
 * One implementation per system: ivshmem-os-posix.c (Linux and other
 * POSIX systems) and ivshmem-os-win32.c (Windows guests).
 */
#ifndef IVSHMEM_OS_H
#define IVSHMEM_OS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IVSHM_DEFAULT_HEARTBEAT_NS (100ull * 1000 * 1000)

/* A monotonic clock in ns (CLOCK_MONOTONIC on POSIX). */
uint64_t ivshm_now_ns (void);
/* A random, non-zero 64-bit value (session ids, reader tokens). */
uint64_t ivshm_random_u64 (void);
/* This process's id, for information in the shared header. */
uint64_t ivshm_process_id (void);
void ivshm_sleep_ns (uint64_t ns);

/* A thread that calls fn(data) every period_ns (0: the heartbeat period)
 * until stopped. NULL if the thread could not be started. */
typedef struct IvshmTicker IvshmTicker;
IvshmTicker *ivshm_ticker_start (uint64_t period_ns, void (*fn) (void *),
    void *data);
void ivshm_ticker_stop (IvshmTicker * ticker);

#ifdef __cplusplus
}
#endif
#endif /* IVSHMEM_OS_H */
