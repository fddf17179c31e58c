#ifndef CKILNSYS_H
#define CKILNSYS_H
#include <sys/types.h>
#include <sys/xattr.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>

static inline unsigned int kiln_major(dev_t d) { return major(d); }
static inline unsigned int kiln_minor(dev_t d) { return minor(d); }
static inline dev_t kiln_makedev(unsigned int ma, unsigned int mi) { return makedev(ma, mi); }
ssize_t kiln_copy_file_range(int in, int out, size_t len);
#include "kiln_sandbox.h"
#endif
