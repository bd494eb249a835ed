/* ivshmem-info: text and JSON output of untrusted strings and sizes
 * SPDX-License-Identifier: MIT
 */
#include "info-text.h"

#include <inttypes.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if the bytes
 * there are not one. Strings come from an untrusted peer. */
static size_t
utf8_len (const unsigned char *p, size_t n)
{
  size_t len, i;
  uint32_t cp;

  if (p[0] < 0x80)
    return 1;
  if (p[0] >= 0xc2 && p[0] <= 0xdf)
    len = 2, cp = p[0] & 0x1f;
  else if (p[0] >= 0xe0 && p[0] <= 0xef)
    len = 3, cp = p[0] & 0x0f;
  else if (p[0] >= 0xf0 && p[0] <= 0xf4)
    len = 4, cp = p[0] & 0x07;
  else
    return 0;
  if (len > n)
    return 0;
  for (i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
      || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return len;
}

/* A JSON string: control characters escaped, bytes that are not UTF-8
 * replaced with U+FFFD, so that the output always parses. */
void
json_string (FILE * out, const char *s)
{
  const unsigned char *p = (const unsigned char *) s;
  size_t n = strlen (s), len;

  fputc ('"', out);
  while (n > 0) {
    if (*p == '"' || *p == '\\') {
      fputc ('\\', out);
      fputc (*p, out);
      len = 1;
    } else if (*p == '\n') {
      fputs ("\\n", out);
      len = 1;
    } else if (*p == '\t') {
      fputs ("\\t", out);
      len = 1;
    } else if (*p < 0x20 || *p == 0x7f) {
      fprintf (out, "\\u%04x", *p);
      len = 1;
    } else if ((len = utf8_len (p, n)) == 0) {
      fputs ("\\ufffd", out);
      len = 1;
    } else {
      fwrite (p, 1, len, out);
    }
    p += len;
    n -= len;
  }
  fputc ('"', out);
}

/* For a terminal: control characters and bytes that are not UTF-8 as
 * \xNN, so a hostile string cannot send escape sequences. */
void
text_string (FILE * out, const char *s)
{
  const unsigned char *p = (const unsigned char *) s;
  size_t n = strlen (s), len;

  while (n > 0) {
    if (*p < 0x20 || *p == 0x7f || *p == '\\' || (len = utf8_len (p, n)) == 0) {
      if (*p == '\\')
        fputs ("\\\\", out);
      else
        fprintf (out, "\\x%02x", *p);
      len = 1;
    } else {
      fwrite (p, 1, len, out);
    }
    p += len;
    n -= len;
  }
}

/* "64" or "0.25": a size in MiB, exact when it is whole. */
void
print_mib (FILE * out, uint64_t size)
{
  const uint64_t mib = UINT64_C (1024) * 1024;

  if (size % mib == 0)
    fprintf (out, "%" PRIu64, size / mib);
  else
    fprintf (out, "%.3f", (double) size / (double) mib);
}

void
print_size_text (FILE * out, const char *label, uint64_t size)
{
  fprintf (out, "%s%" PRIu64 " bytes (", label, size);
  print_mib (out, size);
  fputs (" MiB)\n", out);
}
