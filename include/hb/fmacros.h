/* Feature-test macros, included first by every .c file (Redis fmacros.h).
 * We compile as C11 without GNU extensions, so POSIX and Linux interfaces
 * (fdatasync, pipe2, eventfd, clock_gettime, strndup) must be asked for. */
#ifndef HB_FMACROS_H
#define HB_FMACROS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define _FILE_OFFSET_BITS 64

#endif
