import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A file the configuration reads a secret from, named by the key that points at it, so that
/// `check-config` can ask whether the service user can read it and an error can name both.
public struct SecretFile: Sendable, Equatable {
    public var key: String
    public var path: String

    public init(key: String, path: String) {
        self.key = key
        self.path = path
    }
}

/// Why a file could not be read, in words an operator can act on (not `NSCocoaErrorDomain 256`).
public struct FileReadError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let problem: String
    public var description: String { "\(path): \(problem)" }
}

/// Reads configuration and secret files with POSIX calls, so every failure says which of the
/// usual mistakes it is: missing, a directory, or a permission the current user lacks.
public enum TextFile {
    public static func read(_ path: String) throws(FileReadError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileReadError(path: path, problem: describe(errno: errno, path: path)) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw FileReadError(path: path, problem: String(cString: strerror(errno))) }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            throw FileReadError(path: path, problem: "is a directory, not a file")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw FileReadError(path: path, problem: "is not a regular file")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileReadError(path: path, problem: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw FileReadError(path: path, problem: "is not UTF-8 text")
        }
        return text
    }

    static func describe(errno code: Int32, path: String) -> String {
        switch code {
        case ENOENT: return "no such file"
        case EACCES:
            var info = stat()
            let owner = stat(path, &info) == 0 ? " (it is \(ownership(info)))" : ""
            return "permission denied for \(currentUser())\(owner): it needs read permission for this user or group"
        default: return String(cString: strerror(code))
        }
    }

    /// `root:pgnoti 0640`, for messages about who may read a file.
    public static func ownership(_ info: stat) -> String {
        let user = getpwuid(info.st_uid).map { String(cString: $0.pointee.pw_name) } ?? "\(info.st_uid)"
        let group = getgrgid(info.st_gid).map { String(cString: $0.pointee.gr_name) } ?? "\(info.st_gid)"
        return "\(user):\(group) \(String(info.st_mode & 0o7777, radix: 8).leftPadded(to: 4))"
    }

    static func currentUser() -> String {
        let uid = geteuid()
        let name = getpwuid(uid).map { String(cString: $0.pointee.pw_name) } ?? "uid \(uid)"
        return "user \(name)"
    }
}

/// Whether a given user could read a file: how `check-config`, run as root, judges the files
/// the service user will open after it drops to that user.
public enum ReadAccess {
    /// nil when `user` can read `path`; otherwise what stands in the way, in plain words.
    public static func problem(user: String, path: String) -> String? {
        guard let entry = getpwnam(user) else { return nil }
        let uid = entry.pointee.pw_uid
        let gid = entry.pointee.pw_gid
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(user, gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(user, gid, &groups, &count)
        }
        let memberOf = Set(groups.prefix(Int(max(count, 0))))
        // Every directory on the way must be searchable, and the file readable.
        var prefix = ""
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        for (index, component) in components.enumerated() {
            prefix += "/" + component
            var info = stat()
            guard stat(prefix, &info) == 0 else {
                return "\(prefix): \(TextFile.describe(errno: errno, path: prefix))"
            }
            let isLast = index == components.count - 1
            let (ownerBit, groupBit, otherBit): (mode_t, mode_t, mode_t) =
                isLast ? (0o400, 0o040, 0o004) : (0o100, 0o010, 0o001)
            let allowed: Bool
            if uid == 0 {
                allowed = true
            } else if info.st_uid == uid {
                allowed = info.st_mode & ownerBit != 0
            } else if memberOf.contains(info.st_gid) {
                allowed = info.st_mode & groupBit != 0
            } else {
                allowed = info.st_mode & otherBit != 0
            }
            if !allowed {
                let what = isLast ? "read" : "enter"
                return "user \(user) cannot \(what) \(prefix) (it is \(TextFile.ownership(info)))"
            }
            if isLast && (info.st_mode & S_IFMT) != S_IFREG {
                return "\(prefix) is not a regular file"
            }
        }
        return nil
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
