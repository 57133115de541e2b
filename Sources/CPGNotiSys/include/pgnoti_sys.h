#ifndef PGNOTI_SYS_H
#define PGNOTI_SYS_H

/// Linux calls Swift's Glibc module leaves out (they need _GNU_SOURCE).
int pgnoti_syncfs(int fd);

#endif
