/* ivshmem-info: text and JSON output of untrusted strings and sizes
 * SPDX-License-Identifier: MIT
 */
#ifndef IVSHMEM_INFO_TEXT_H
#define IVSHMEM_INFO_TEXT_H

#include <stdint.h>
#include <stdio.h>

/* A JSON string: control characters escaped, bytes that are not UTF-8
 * replaced with U+FFFD, so that the output always parses. */
void json_string (FILE * out, const char *s);

/* For a terminal: control characters and bytes that are not UTF-8 as
 * \xNN, so a hostile string cannot send escape sequences. */
void text_string (FILE * out, const char *s);

/* "64" or "0.25": a size in MiB, exact when it is whole. */
void print_mib (FILE * out, uint64_t size);

/* "LABEL<size> bytes (<MiB> MiB)\n" */
void print_size_text (FILE * out, const char *label, uint64_t size);

#endif /* IVSHMEM_INFO_TEXT_H */
