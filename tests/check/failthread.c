/* gst-ivshmem: a preload library that refuses to start the plugin's threads
 * SPDX-License-Identifier: MIT
 *
 * pthread_create() fails with EAGAIN (the thread limit) for a thread whose
 * start routine lies in libgstivshmem: the elements' heartbeat threads.
 * Every other thread starts as usual. For tests/check/sinkthread.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

typedef int (*CreateFn) (pthread_t *, const pthread_attr_t *,
    void *(*)(void *), void *);

int
pthread_create (pthread_t * thread, const pthread_attr_t * attr,
    void *(*start) (void *), void *arg)
{
  static CreateFn real;
  Dl_info info;

  if (!real)
    real = (CreateFn) dlsym (RTLD_NEXT, "pthread_create");
  if (dladdr ((void *) start, &info) && info.dli_fname &&
      strstr (info.dli_fname, "libgstivshmem"))
    return EAGAIN;
  return real (thread, attr, start, arg);
}
