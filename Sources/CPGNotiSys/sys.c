#define _GNU_SOURCE
#include <unistd.h>
#include "pgnoti_sys.h"

int pgnoti_syncfs(int fd) {
#ifdef __linux__
    return syncfs(fd);
#else
    (void)fd;
    sync();
    return 0;
#endif
}
