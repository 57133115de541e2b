#if canImport(Glibc)
    import Glibc
#endif

/// Free space as an unprivileged process sees it (what is left before ENOSPC for the daemon).
public enum FreeSpace {
    public static func bytes(at path: String) -> Int? {
        var info = statvfs()
        guard statvfs(path.isEmpty ? "." : path, &info) == 0 else { return nil }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }
}
