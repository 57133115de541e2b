import Foundation
import PGNotiConfig
import PGNotiSpool

#if canImport(Glibc)
    import Glibc
#endif

/// Why the daemon would not start, in words that name what is in the way.
struct StartupError: Error, CustomStringConvertible {
    let description: String
}

/// What must hold before the daemon opens anything: it is the only daemon on its state, and
/// its ports are free. Checked first, so a second instance fails at once with the holder's pid
/// rather than after waiting on the outbox lock, and a port in use is named with its key.
enum StartupChecks {
    /// `<database>.lock`: an exclusive `flock` held for the daemon's life, with the pid inside.
    /// Never in the queue directory: the queue may be read-only or full when the daemon starts.
    static func instanceLock(database: String) throws -> QueueLock {
        let path = database + ".lock"
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty {
            try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        }
        guard let lock = try QueueLock.tryAcquire(path: path, note: "serve") else {
            let holder = QueueLock.holder(path: path).map { " by pid \($0.pid)" } ?? ""
            throw StartupError(
                description:
                    "another pgnoti serve already runs on \(database): \(path) is locked\(holder)")
        }
        return lock
    }

    /// Binds each address once and lets go: a port another process holds is reported with its
    /// key, address and port instead of NIO's `bind(descriptor:ptr:bytes:)` and a shutdown's
    /// follow-on errors. (Port 0 is always free.)
    static func portsAreFree(_ config: Config) throws {
        var addresses: [(String, ListenAddress)] = [("listen", config.listen)]
        if let admin = config.adminListen { addresses.append(("admin_listen", admin)) }
        for (key, address) in addresses where address.port != 0 {
            if let problem = bindProblem(address) {
                throw StartupError(description: "\(key): cannot listen on \(address): \(problem)")
            }
        }
    }

    static func bindProblem(_ address: ListenAddress) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address.host, String(address.port), &hints, &list) == 0, let first = list else {
            return nil  // NIO reports a name it cannot resolve well enough.
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var on: Int32 = 1
        // As NIO binds: with SO_REUSEADDR, so a port in TIME_WAIT is not mistaken for one in use.
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 else { return nil }
        let code = errno
        switch code {
        case EADDRINUSE:
            return
                "address already in use (another process listens on port \(address.port): ss -ltnp 'sport = :\(address.port)')"
        case EACCES:
            return "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE: systemd/pgnoti-network.conf.example)"
        case EADDRNOTAVAIL:
            return "the address is not on this host"
        default:
            return String(cString: strerror(code))
        }
    }
}
