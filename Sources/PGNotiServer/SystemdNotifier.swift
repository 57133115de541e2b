import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// sd_notify(3) without libsystemd: one datagram to the socket systemd names in $NOTIFY_SOCKET.
/// Outside systemd (no variable) every call is a no-op.
public struct SystemdNotifier: Sendable {
    let socketPath: String?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public var isActive: Bool { socketPath != nil }

    @discardableResult
    public func notify(_ state: String) -> Bool {
        guard let socketPath else { return false }
        return UnixDatagram.send(Array(state.utf8), to: socketPath)
    }
}

/// One datagram to a Unix socket, the way systemd's sockets take messages ($NOTIFY_SOCKET,
/// journald's native socket).
public enum UnixDatagram {
    /// True when the whole datagram went out. A leading '@' names a socket in the abstract
    /// namespace: its first byte is NUL.
    @discardableResult
    public static func send(_ message: [UInt8], to socketPath: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }

        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        if pathBytes.first == UInt8(ascii: "@") { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                sendto(fd, message, message.count, Int32(MSG_NOSIGNAL), sockaddrPointer, length)
            }
        }
        return sent == message.count
    }
}
